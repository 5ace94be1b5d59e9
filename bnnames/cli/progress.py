"""The training progress bar on stderr: step, loss, latest and best val, lr, steps/s and time left."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bnnames.cli.common import stderr

if TYPE_CHECKING:  # annotations only: importing it for real would import torch
    from bnnames.schedule import Point

WIDE = 120  # terminal columns from which the bar and the best val's step fit on the line
RATE_WINDOW = 0.5  # seconds over which steps/s is measured (rich's own speed re-sums ~1,000 samples a call)
EVALUATIONS_PER_LINE = 10  # plain lines: also every 10th evaluation (a plateau run may end long before 10% of --steps)
MARKS = {"train": "[dim]train[/]", "val/test": "[cyan]val/test[/]", "new": "[green]new[/]"}


class TrainProgress:
    """A `bnnames.training.hooks.Progress` drawn with rich; plain lines every 10% when stderr is not a terminal."""

    def __init__(self) -> None:
        console = stderr()
        wide = console.width >= WIDE  # narrower: no bar, and val without the best's step (it fits 80)
        self.bar = Progress(
            *([TextColumn("[bold]train"), BarColumn()] if wide else []),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("val {task.fields[val]}" if wide else "val {task.fields[val_short]}"),
            TextColumn("lr {task.fields[lr]}"),
            TextColumn("{task.fields[rate]} steps/s"),
            TimeRemainingColumn(),
            console=console,
        )
        fields = {"loss": "-", "val": "-", "val_short": "-", "lr": "-", "rate": "-"}
        self.task = self.bar.add_task("train", total=None, start=False, **fields)
        self.log_every: int | None = None  # steps between plain log lines (redirected stderr)
        self.next_log = 0
        self.logged: int | None = None  # the step of the last plain line
        self.evaluations = 0
        self.rate = "-"
        self.rate_from: tuple[float, int] | None = None  # (time, step) where the current window began

    def __enter__(self) -> TrainProgress:
        return self  # the bar appears at start(): an error before training is one line, no empty bar

    def __exit__(self, *exc: object) -> None:
        if self.bar.live.is_started:  # rich's stop() prints a blank line when stderr is redirected
            self.bar.stop()

    def start(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)
        self.bar.start_task(self.task)
        if self.bar.console.is_terminal:
            self.bar.start()
        else:  # no live display (rich would print its last frame on exit): plain lines instead
            self.log_every = max(total // 10, 1)
            self.next_log = (done // self.log_every + 1) * self.log_every

    def update(self, step: int, loss: float, lr: float) -> None:
        now = time.monotonic()
        if self.rate_from is None or step < self.rate_from[1]:
            self.rate_from = (now, step)
        elif now > self.rate_from[0]:
            elapsed = now - self.rate_from[0]
            if elapsed >= RATE_WINDOW or self.rate == "-":  # a whole window, or the first numbers of a run
                self.rate = f"{(step - self.rate_from[1]) / elapsed:,.0f}"
            if elapsed >= RATE_WINDOW:
                self.rate_from = (now, step)
        self.bar.update(self.task, completed=step, loss=f"{loss:.4f}", lr=f"{lr:g}", rate=self.rate)
        if self.log_every is not None and step >= self.next_log:
            self._line(step)
            self.next_log = (step // self.log_every + 1) * self.log_every

    def evaluated(self, point: Point, best: Point) -> None:
        val, best_val = f"{point.val:.4f}", f"{best.val:.4f}"
        self.bar.update(self.task, val=f"{val} (best {best_val} @ {best.step:,})", val_short=f"{val} best {best_val}")
        self.evaluations += 1
        if self.log_every is not None and self.evaluations % EVALUATIONS_PER_LINE == 0:
            self._line(point.step)

    def _line(self, step: int) -> None:
        """One plain progress line (stderr is not a terminal), at most one per step."""
        if step == self.logged:
            return
        task = self.bar.tasks[self.task]
        f = task.fields
        self.bar.console.print(
            f"step {step:,}/{task.total:,.0f}  loss {f['loss']}  val {f['val']}  lr {f['lr']}  {f['rate']} steps/s"
        )
        self.logged = step

    def samples(self, step: int, names: list[tuple[str, str]]) -> None:
        shown = ", ".join(f"{escape(name)} {MARKS[mark]}" for name, mark in names)
        self.bar.console.print(f"step {step:,} samples: {shown}", soft_wrap=True)

    def note(self, message: str) -> None:
        self.bar.console.print(f"[yellow]note:[/] {message}", soft_wrap=True)
