"""The training progress bar on stderr: step, loss, lr, steps/s and time left."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bnnames.cli.common import stderr


class TrainProgress:
    """A `bnnames.run.Progress` drawn with rich."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("lr {task.fields[lr]}"),
            TextColumn("{task.fields[rate]} steps/s"),
            TimeRemainingColumn(),
            console=stderr(),
        )
        self.task = self.bar.add_task("train", total=None, loss="-", lr="-", rate="-", start=False)

    def __enter__(self) -> TrainProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def start(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)
        self.bar.start_task(self.task)

    def update(self, step: int, loss: float, lr: float) -> None:
        speed = self.bar.tasks[self.task].speed
        rate = f"{speed:,.0f}" if speed else "-"
        self.bar.update(self.task, completed=step, loss=f"{loss:.4f}", lr=f"{lr:g}", rate=rate)

    def note(self, message: str) -> None:
        self.bar.console.print(f"[yellow]note:[/] {message}", soft_wrap=True)
