"""The progress bar: steps/s from the first reports on, then per 0.5 s window; a line that fits the terminal."""

from __future__ import annotations

import io

from rich.console import Console

from bnnames.cli import progress
from bnnames.cli.progress import TrainProgress
from bnnames.schedule import Point


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


def test_a_narrow_terminal_gets_a_line_that_fits(monkeypatch) -> None:
    """Under 120 columns: no bar, and val without the best val's step, so 80 columns hold it all."""
    monkeypatch.setattr(progress.time, "monotonic", lambda: 0.0)
    for width in (80, 140):
        console = Console(width=width, file=io.StringIO(), force_terminal=True)
        monkeypatch.setattr(progress, "stderr", lambda console=console: console)
        bar = TrainProgress()
        bar.start(0, 200_000)
        bar.update(100_000, 2.1425, 0.1)
        bar.evaluated(Point(100_000, 2.1783, 2.14, 0.1), Point(85_000, 2.1716, 2.15, 0.1))
        line = _render(bar)
        bar.bar.stop()
        if width == 80:
            assert "━" not in line and "val 2.1783 best 2.1716" in line and len(line.rstrip()) <= 80, line
        else:
            assert "━" in line and "val 2.1783 (best 2.1716 @ 85,000)" in line, line


def _render(bar: TrainProgress) -> str:
    """The progress line as the terminal would show it now."""
    capture = Console(width=bar.bar.console.width, file=io.StringIO(), force_terminal=False, color_system=None)
    capture.print(bar.bar.get_renderable())
    return capture.file.getvalue()  # type: ignore[attr-defined]
