"""Test helper: `bnnames ARGS`, sent a real signal right after a chosen training step.

    python tests/signal_driver.py STEP INT|TERM|INT,INT train ...

The kernel delivers the signal to the real handler of `bnnames train`, exactly as a Ctrl-C or a
`kill` would, only at a step boundary of our choosing instead of a random moment, so that
tests can interrupt a run at several exact points ("INT,INT": two Ctrl-C in a row). Used by
tests/test_resume.py only.
"""

from __future__ import annotations

import signal
import sys
import threading

from helpers import interrupt_after

from bnnames.cli import main


def send(signals: list[int]) -> None:
    """Each signal to the main thread, one at a time. A process-wide kill may land on one of torch's
    threads, and two that arrive before the main thread runs Python's handler count as one (the
    handler runs once per flag), which made "INT,INT" flaky under load."""
    for signum in signals:
        signal.pthread_kill(threading.main_thread().ident, signum)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a call: Python runs the pending handler here


if __name__ == "__main__":
    step, names, *args = sys.argv[1:]
    signals = [getattr(signal, f"SIG{name}") for name in names.split(",")]
    interrupt_after(int(step), lambda: send(signals))
    sys.argv = ["bnnames", *args]
    main()
