"""Test helper: `bnnames ARGS` with a real signal, or a pause, at a chosen moment.

    python tests/signal_driver.py WHEN WHAT ARGS...

WHEN: a training step number (right after that step), `read` (right after a checkpoint's
tensors are read) or `write` (halfway through writing a checkpoint's temporary file).
WHAT: `INT`, `TERM` or `INT,INT` (signals the process sends itself), or `pause` (print
"paused" on stdout and wait until stdin is closed: the run holds its checkpoint lock meanwhile).

The kernel delivers the signal to the real handler of `bnnames`, exactly as a Ctrl-C or a
`kill` would, only at a moment of our choosing instead of a random one, so that tests can
interrupt a command at exact points ("INT,INT": two Ctrl-C in a row). Used by
tests/test_resume.py and tests/test_lock.py.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

from helpers import interrupt_after

import bnnames.storage.checkpoint as checkpoint
from bnnames.cli import main
from bnnames.storage.files import atomic_writer


def after_read(action: Callable[[], None]) -> None:
    real = checkpoint._read_tensors

    def read(handle, path, table):  # type: ignore[no-untyped-def]
        tensors = real(handle, path, table)
        action()
        return tensors

    checkpoint._read_tensors = read


def halfway_through_write(action: Callable[[], None]) -> None:
    def write(path, data: bytes) -> None:  # type: ignore[no-untyped-def]
        with atomic_writer(path) as handle:
            handle.write(data[: len(data) // 2])
            action()
            handle.write(data[len(data) // 2 :])

    checkpoint.atomic_write_bytes = write


def pause() -> None:
    print("paused", flush=True)
    sys.stdin.read()


def send(signals: list[int]) -> None:
    """Each signal to the main thread, one at a time. A process-wide kill may land on one of torch's
    threads, and two that arrive before the main thread runs Python's handler count as one (the
    handler runs once per flag), which made "INT,INT" flaky under load."""
    for signum in signals:
        signal.pthread_kill(threading.main_thread().ident, signum)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a call: Python runs the pending handler here


if __name__ == "__main__":
    when, what, *args = sys.argv[1:]
    signals = [] if what == "pause" else [getattr(signal, f"SIG{name}") for name in what.split(",")]
    action = pause if what == "pause" else lambda: send(signals)
    if when == "read":
        after_read(action)
    elif when == "write":
        halfway_through_write(action)
    else:
        interrupt_after(int(when), action)
    sys.argv = ["bnnames", *args]
    main()
