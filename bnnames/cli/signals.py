"""How every command answers Ctrl-C (SIGINT) and `kill` (SIGTERM): exit 128 + the signal number.

Python raises KeyboardInterrupt on SIGINT, but SIGTERM's default action kills the process on
the spot, leaving a half-written temporary file beside the checkpoint. `terminate_as_interrupt`
raises SIGTERM as an exception too, so every `finally`, the checkpoint lock and the atomic
writer clean up as they do for Ctrl-C. `train` records both signals instead
(`stop_on_signals`): it finishes the step, saves a resumable checkpoint, then exits.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt (so code that handles one handles both)."""


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The shell's convention: 128 + the signal that stopped the command (130 Ctrl-C, 143 kill)."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While the command runs, SIGTERM raises Terminated instead of killing the process."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


class stop_on_signals:
    """Record SIGINT/SIGTERM instead of stopping, so a run can save; a second signal stops at once."""

    def __init__(self, received: list[int]) -> None:
        self.received = received
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)  # the next signal raises (KeyboardInterrupt or Terminated)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
