"""Telling a run that blew up from one that is merely learning badly.

A run has diverged when its loss is not finite, when any parameter or buffer is not finite,
or when the loss exceeds DIVERGED_FACTOR x ln(vocab size), the loss of a uniform guess. A
learning model sits below ln(V) after a few hundred steps; a blown-up one (say --lr 1e6)
can stay finite for thousands of steps with a mini-batch loss far above it, which no amount of
further training repairs (docs/reliability.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from bnnames.errors import TrainingDiverged
from bnnames.storage.checkpoint import non_finite

DIVERGED_FACTOR = 1000.0  # x ln(V): about 3,300 nats per character for the 27 symbols of names.txt


def loss_ceiling(vocab_size: int) -> float:
    return DIVERGED_FACTOR * math.log(max(vocab_size, 2))


def check_loss(loss: float, ceiling: float, step: int, lr: float) -> None:
    """Stop at a loss above `ceiling` (math.inf: only a non-finite loss), NaN included."""
    if not loss <= ceiling:  # also true for NaN
        guess = f"; a uniform guess scores {ceiling / DIVERGED_FACTOR:.2f}" if math.isfinite(ceiling) else ""
        raise TrainingDiverged(f"training diverged: the loss is {loss:.4g} at step {step:,} (lr {lr:g}{guess})")


def check_finite(model: torch.nn.Module, step: int) -> None:
    """Refuse to go on (and to save) once any parameter or buffer holds inf or NaN."""
    bad = non_finite(model.state_dict())
    if bad:
        raise TrainingDiverged(f"training diverged: {bad[0]} holds non-finite values after step {step:,}")


def with_kept(err: TrainingDiverged, kept: str) -> TrainingDiverged:
    """The same error, saying what is on disk and what to do."""
    return TrainingDiverged(f"{err}; {kept}. Lower --lr and start a new run")


def kept_message(path: Path, saved_step: int | None, existed: bool) -> str:
    """What is on disk after a divergence: the last good checkpoint of this run, or nothing new."""
    if saved_step is not None:
        return f"the last good checkpoint, {path} at step {saved_step:,}, is kept"
    if existed:
        return f"{path} was left as it was"
    return "no checkpoint was written"
