"""The progress bar's steps/s: numbers from the first reports on, then one per 0.5 s window."""

from __future__ import annotations

from bnnames.cli import progress
from bnnames.cli.progress import TrainProgress


def test_steps_per_second_show_early_then_per_window(monkeypatch) -> None:
    clock = iter([0.0, 0.01, 0.02, 0.6, 0.61])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    bar = TrainProgress()
    rates = []
    for step in (100, 200, 300, 400, 500):
        bar.update(step, 2.0, 0.1)
        rates.append(bar.rate)
    # the window starts at the first report; a short run still gets a number; a whole window
    # (0.6 s: 300 steps) replaces it, and the next window keeps it until it is whole
    assert rates == ["-", "10,000", "10,000", "500", "500"]
