"""Test helper: `bnnames ARGS`, sent a real signal right after a chosen training step.

    python tests/signal_driver.py STEP INT|TERM|INT,INT train ...

The kernel delivers the signal to the real handler of `bnnames train`, exactly as a Ctrl-C or a
`kill` would, only at a step boundary of our choosing instead of a random moment, so that
tests can interrupt a run at several exact points ("INT,INT": two Ctrl-C in a row). Used by
tests/test_resume.py only.
"""

from __future__ import annotations

import os
import signal
import sys

from helpers import interrupt_after

from bnnames.cli import main

if __name__ == "__main__":
    step, names, *args = sys.argv[1:]
    signals = [getattr(signal, f"SIG{name}") for name in names.split(",")]
    interrupt_after(int(step), lambda: [os.kill(os.getpid(), signum) for signum in signals])
    sys.argv = ["bnnames", *args]
    main()
