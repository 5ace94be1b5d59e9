"""What a training run does between its segments of steps, one hook per concern.

The run (`bnnames.training.run`) is a plain loop: it asks every hook when it next needs to
stop, trains up to the nearest of those steps, then lets each hook act, in a fixed order
(validation, preview, diagnostics, TensorBoard, saving). Every engine trains in the same
segments, so every hook sees the same steps on every engine, and none of them draws from the
training generator or touches the running statistics: a run is the same with or without them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from bnnames.data import Dataset
from bnnames.diagnostics.recording import Recorder
from bnnames.errors import ConfigError
from bnnames.model import NamesModel
from bnnames.schedule import Point, run_lr
from bnnames.storage.checkpoint import Checkpoint, save_checkpoint
from bnnames.training.validation import Validator, preview


class Progress(Protocol):
    def start(self, done: int, total: int) -> None: ...
    def update(self, step: int, loss: float, lr: float) -> None: ...
    def evaluated(self, point: Point, best: Point) -> None: ...
    def samples(self, step: int, names: list[tuple[str, str]]) -> None: ...  # (name, "train"|"val/test"|"new")
    def note(self, message: str) -> None: ...


@dataclass
class Run:
    """The state a run's hooks read and change between segments."""

    checkpoint: Path
    ckpt: Checkpoint  # as of the last stop: what a save writes
    model: NamesModel
    generator: torch.Generator  # the training generator (hooks only read its state, for the checkpoint)
    recorder: Recorder | None  # saved with the checkpoint
    progress: Progress
    first: int  # the step this invocation started at
    step: int
    stopping: bool = False  # asked to stop (Ctrl-C): save now and return
    evaluated: Point | None = None  # the val point measured at this stop, if any
    saved: int | None = None  # the step the file on disk holds for this run (None: not this run's yet)
    decayed: bool = False  # the plateau schedule decayed the lr: the loop rebuilds its trainer

    @property
    def total(self) -> int:
        return self.ckpt.train_config.steps

    def save(self) -> None:
        """Write the checkpoint, then the diagnostics sidecar: the sidecar always matches it."""
        save_checkpoint(self.checkpoint, self.ckpt)
        self.saved = self.ckpt.step
        if self.recorder is not None:
            self.recorder.save()


class Hook:
    """One thing a run does between segments. Every method has a do-nothing default."""

    def next_stop(self, step: int) -> int | None:
        """The first step after `step` at which this hook needs the run to stop (None: none)."""
        return None

    def reported(self, step: int, loss: float, lr: float) -> None:
        """A training step's loss, as the trainer reports it (every REPORT_EVERY steps)."""

    def at_stop(self, run: Run) -> None:
        """Act at `run.step`, whichever hook asked for this stop."""


def next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


class Validation(Hook):
    """The val loss every `eval_every` steps and at the end, the best weights, the plateau
    schedule's decisions (on a decay, training goes on from the best weights at the lower lr)."""

    def __init__(self, validator: Validator) -> None:
        self.validator = validator

    def next_stop(self, step: int) -> int | None:
        return next_multiple(step, self.validator.every)

    def reported(self, step: int, loss: float, lr: float) -> None:
        self.validator.reported(step, loss)

    def at_stop(self, run: Run) -> None:
        run.evaluated = None
        if run.step > run.first and (self.validator.due(run.step) or run.step == run.total):
            if self.validator.evaluate(run.model, run.step, run.ckpt.train_config) == "decay":
                run.model.load_state_dict(self.validator.best.state_dict())  # in place: trainers keep their tensors
                run.decayed = True
            run.evaluated = self.validator.curve.points[-1]
            run.progress.evaluated(run.evaluated, self.validator.curve.best)
        run.ckpt = dataclasses.replace(
            run.ckpt,
            model=run.model,
            step=run.step,
            generator_state=run.generator.get_state(),
            curve=self.validator.curve,
            best_model=self.validator.best,
        )


class Preview(Hook):
    """A few names every `every` steps (`--sample-every`), from a generator of their own."""

    def __init__(self, every: int, dataset: Dataset, device: torch.device) -> None:
        self.every, self.dataset, self.device = every, dataset, device

    def next_stop(self, step: int) -> int | None:
        return next_multiple(step, self.every)

    def at_stop(self, run: Run) -> None:
        if run.step % self.every == 0 and run.step > run.first:
            run.progress.samples(run.step, preview(run.model, self.dataset, run.step, self.device))


class Diagnostics(Hook):
    """A diagnostics probe every `--diagnostics-every` steps into the sidecar (saved with the checkpoint)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def next_stop(self, step: int) -> int | None:
        return self.recorder.next_stop(step)

    def at_stop(self, run: Run) -> None:
        self.recorder.record(run.model, run.step, run_lr(run.ckpt.train_config, run.ckpt.curve, run.step))


class Saving(Hook):
    """The checkpoint every `--save-every` steps (never past the end: the end saves with its
    losses), and at once when the run is asked to stop."""

    def __init__(self, every: int | None) -> None:
        self.every = every

    def next_stop(self, step: int) -> int | None:
        return None if self.every is None else next_multiple(step, self.every)

    def at_stop(self, run: Run) -> None:
        save_point = self.every is not None and run.step % self.every == 0
        if (run.step < run.total and not run.ckpt.curve.stopped and save_point) or run.stopping:
            run.save()


class TensorBoard(Hook):
    """Loss/train at every report and Loss/val at every evaluation, to a TensorBoard folder."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def reported(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("Loss/train", loss, step)  # the reference's tag
        self.writer.flush()

    def at_stop(self, run: Run) -> None:
        if run.evaluated is not None:
            self.writer.add_scalar("Loss/val", run.evaluated.val, run.evaluated.step)
            self.writer.flush()


def tensorboard(folder: Path) -> TensorBoard:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install 'bnnames[tensorboard]'") from None
    return TensorBoard(SummaryWriter(str(folder)))


def nearest_stop(step: int, total: int, hooks: list[Hook]) -> int:
    """Where the next segment ends: the nearest step some hook needs, or the end of the run."""
    stops = (hook.next_stop(step) for hook in hooks)
    return min([total, *(stop for stop in stops if stop is not None)])
