"""What a run watches between its training segments: the val loss, the best weights, samples.

Both leave the training trajectory alone: they never draw from the training generator (samples
come from a generator seeded by the step) and never touch the running statistics (eval mode,
BatchNorm folded, bnnames.evaluate.split_loss). Only the plateau schedule reads the curve.
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from bnnames.config import SampleConfig, TrainConfig
from bnnames.data import Dataset
from bnnames.evaluate import counted_loss
from bnnames.examples import Source
from bnnames.inference import count_rows
from bnnames.model import NamesModel
from bnnames.sample import sample_names
from bnnames.schedule import Curve, Decision, Point, after, decide, run_lr

SAMPLE_SEED = 2_000_003  # the names shown at step s come from a generator seeded SAMPLE_SEED + s
SAMPLES_SHOWN = 5
REPORT_EVERY = 100  # both trainers report every step that is a multiple of this, however a run is cut
SMOOTHING = 0.1  # weight of each new report in the smoothed train loss: an average over ~1,000 steps


class Validator:
    """Measures the whole val split every `every` steps and keeps the best weights."""

    def __init__(self, every: int, val: Source, curve: Curve, best: NamesModel | None) -> None:
        self.every, self.val, self.curve, self.best = every, val, curve, best
        self._rows: tuple[torch.Tensor, torch.Tensor] | None = None  # val's distinct rows and counts, once

    def due(self, step: int) -> bool:
        """A multiple of `every` not measured yet (a resumed run starts where one was)."""
        measured = bool(self.curve.points) and self.curve.points[-1].step >= step
        return step % self.every == 0 and not measured

    def reported(self, step: int, loss: float) -> None:
        """Smooth the mini-batch losses of the steps every run reports, whatever its segments."""
        if step % REPORT_EVERY == 0:
            before = self.curve.smoothed_train
            smoothed = loss if before is None else (1 - SMOOTHING) * before + SMOOTHING * loss
            self.curve = dataclasses.replace(self.curve, smoothed_train=smoothed)

    def loss(self, model: NamesModel) -> float:
        """The val loss of `model` with its current statistics; the split's rows are counted once a run."""
        if self._rows is None:
            self._rows = count_rows(self.val, targets=True)
        return counted_loss(model, *self._rows)

    def evaluate(self, model: NamesModel, step: int, config: TrainConfig) -> Decision:
        """Measure val after `step` steps, keep the weights if they are the best so far, and
        return (and note in the curve) the schedule's decision."""
        model.use_stats("running")
        lr = run_lr(config, self.curve, step - 1)  # the lr of the step just done
        point = Point(step, self.loss(model), self.curve.smoothed_train, lr)
        best = self.curve.best
        if best is None or point.val < best.val:
            self.best = copy.deepcopy(model)  # weights and BatchNorm buffers, as they are now
        self.curve = dataclasses.replace(self.curve, points=(*self.curve.points, point))
        decision = decide(self.curve, config)
        self.curve = after(self.curve, decision, step)
        return decision


def preview(model: NamesModel, dataset: Dataset, step: int, device: torch.device) -> list[tuple[str, str]]:
    """A few names drawn now, each marked "train", "val/test" (held-out names) or "new"."""
    generator = torch.Generator().manual_seed(SAMPLE_SEED + step)
    config = SampleConfig(count=SAMPLES_SHOWN, batch=SAMPLES_SHOWN)
    model.use_stats("running")
    names = sample_names(model, dataset.vocab, dataset.block_size, config, generator, device=device)
    splits = dataset.splits  # decodes the whole file: once per preview
    train, held_out = set(splits.get("train")), set(splits.get("val") + splits.get("test"))
    return [(name, "train" if name in train else "val/test" if name in held_out else "new") for name in names]
