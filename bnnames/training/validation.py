"""What a run watches between its training segments: the val loss, the best weights, samples.

Both leave the training trajectory alone: they never draw from the training generator (samples
come from a generator seeded by the step) and never touch the running statistics (eval mode,
BatchNorm folded, bnnames.evaluate.split_loss). Only the plateau schedule reads the curve.
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from bnnames.config import SampleConfig
from bnnames.data import Dataset
from bnnames.evaluate import split_loss
from bnnames.model import NamesModel
from bnnames.sample import sample_names
from bnnames.schedule import Curve, Point

SAMPLE_SEED = 2_000_003  # the names shown at step s come from a generator seeded SAMPLE_SEED + s
SAMPLES_SHOWN = 5
Examples = tuple[torch.Tensor, torch.Tensor]  # contexts (N, block_size), targets (N,)


class Validator:
    """Measures the whole val and train splits every `every` steps and keeps the best weights."""

    def __init__(self, every: int, train: Examples, val: Examples, curve: Curve, best: NamesModel | None) -> None:
        self.every, self.train, self.val = every, train, val
        self.curve, self.best = curve, best

    def next_stop(self, step: int) -> int:
        return (step // self.every + 1) * self.every

    def due(self, step: int) -> bool:
        """A multiple of `every` not measured yet (a resumed run starts where one was)."""
        done = self.curve.points[-1].step if self.curve.points else -1
        return step % self.every == 0 and step > done

    def evaluate(self, model: NamesModel, step: int, lr: float) -> Point:
        model.use_stats("running")
        point = Point(step, split_loss(model, *self.val), split_loss(model, *self.train), lr)
        best = self.curve.best
        if best is None or point.val < best.val:
            self.best = copy.deepcopy(model)  # weights and BatchNorm buffers, as they are now
        self.curve = dataclasses.replace(self.curve, points=(*self.curve.points, point))
        return point


def preview(model: NamesModel, dataset: Dataset, step: int, device: torch.device) -> list[tuple[str, str]]:
    """A few names drawn now, each marked "train", "val/test" (held-out names) or "new"."""
    generator = torch.Generator().manual_seed(SAMPLE_SEED + step)
    config = SampleConfig(count=SAMPLES_SHOWN, batch=SAMPLES_SHOWN)
    model.use_stats("running")
    names = sample_names(model, dataset.vocab, dataset.block_size, config, generator, device=device)
    train, held_out = set(dataset.splits.get("train")), set(dataset.splits.get("val") + dataset.splits.get("test"))
    return [(name, "train" if name in train else "val/test" if name in held_out else "new") for name in names]
