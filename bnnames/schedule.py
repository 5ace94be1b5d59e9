"""The validation curve of a training run, and the plateau schedule it drives.

Every --eval-every steps a run measures its loss on the whole val split (eval mode, running
statistics) and notes its smoothed mini-batch training loss beside it (the whole train split is
eight times the val split: measuring it too would multiply the cost of every evaluation). With
--schedule plateau the curve decides the learning rate: when `patience` evaluations in a row
bring no new best val loss, the run goes back to its best weights and goes on at lr x decay;
after the decay, the next such plateau ends the run. --steps is only the ceiling. The curve
travels in the checkpoint, so a resumed run takes the same decisions at the same steps as one
that never stopped.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from bnnames.config import MAX_STEPS, TrainConfig
from bnnames.errors import CheckpointError

Decision = Literal["go on", "decay", "stop"]


@dataclass(frozen=True)
class Point:
    step: int  # optimisation steps done
    val: float  # mean loss over the whole val split, nats per character
    train: float | None  # the mini-batch training loss, smoothed (None before the first report)
    lr: float  # the learning rate of the last step before it


@dataclass(frozen=True)
class Curve:
    points: tuple[Point, ...] = ()
    decayed_at: int | None = None  # plateau schedule: first step run at lr * decay
    stopped: bool = False  # plateau schedule: the run ended at its second plateau
    smoothed_train: float | None = None  # exponential average of the mini-batch losses reported so far

    @property
    def best(self) -> Point | None:
        """The evaluation with the lowest val loss (the earliest of equals)."""
        return min(self.points, key=lambda p: p.val) if self.points else None

    def up_to(self, step: int) -> Curve:
        """The curve as it was after `step` steps."""
        decayed = self.decayed_at if self.decayed_at is not None and self.decayed_at <= step else None
        return dataclasses.replace(self, points=tuple(p for p in self.points if p.step <= step), decayed_at=decayed)


def trainer_config(config: TrainConfig, curve: Curve) -> TrainConfig:
    """The config whose `lr_at` is this run's learning rate: the plateau decay as a decay step."""
    if config.schedule == "fixed":
        return config
    decay_at = curve.decayed_at if curve.decayed_at is not None else MAX_STEPS  # no decay (yet)
    return dataclasses.replace(config, decay_at=decay_at)


def run_lr(config: TrainConfig, curve: Curve, step: int) -> float:
    """The learning rate of step `step` (0-based) of a run whose evaluations so far are `curve`."""
    return trainer_config(config, curve).lr_at(step)


def decide(curve: Curve, config: TrainConfig) -> Decision:
    """After an evaluation: go on, decay the lr now, or stop (a plateau after the decay).
    At --steps the run ends anyway: a later --resume --steps N decides again at its next evaluation."""
    best = curve.best
    at_the_end = bool(curve.points) and curve.points[-1].step >= config.steps
    if config.schedule == "fixed" or best is None or curve.stopped or at_the_end:
        return "go on"
    since = max(best.step, curve.decayed_at or 0)  # a decay starts a new wait for improvement
    waited = sum(1 for p in curve.points if p.step > since)
    if waited < config.patience:
        return "go on"
    return "decay" if curve.decayed_at is None else "stop"


def after(curve: Curve, decision: Decision, step: int) -> Curve:
    """The curve with `decision`, taken after `step` steps, applied."""
    if decision == "decay":
        return dataclasses.replace(curve, decayed_at=step)
    if decision == "stop":
        return dataclasses.replace(curve, stopped=True)
    return curve


def curve_to_json(curve: Curve) -> dict[str, Any]:
    points = [[p.step, p.val, p.train, p.lr] for p in curve.points]
    return {
        "points": points,
        "decayed_at": curve.decayed_at,
        "stopped": curve.stopped,
        "smoothed_train": curve.smoothed_train,
    }


def curve_from_json(data: Any, step: int) -> Curve:
    """Rebuild a stored curve, refusing anything that a run could not have written."""
    if not isinstance(data, dict) or set(data) != {"points", "decayed_at", "stopped", "smoothed_train"}:
        raise CheckpointError("curve must be an object with points, decayed_at, stopped and smoothed_train")
    rows, decayed_at, stopped, smoothed = data["points"], data["decayed_at"], data["stopped"], data["smoothed_train"]
    if not isinstance(rows, list) or not all(_is_point(row) for row in rows) or not _is_loss(smoothed, None):
        raise CheckpointError("curve points must be [step, val, train, lr] with finite losses")
    points = tuple(Point(row[0], float(row[1]), _float(row[2]), float(row[3])) for row in rows)
    steps = [p.step for p in points]
    if steps != sorted(set(steps)) or any(not 0 <= s <= step for s in steps):
        raise CheckpointError(f"curve steps must increase and lie within 0..{step}")
    if decayed_at is not None and (type(decayed_at) is not int or not 0 <= decayed_at <= step):
        raise CheckpointError(f"curve decayed_at must be null or a step within 0..{step}")
    if type(stopped) is not bool:
        raise CheckpointError("curve stopped must be true or false")
    return Curve(points, decayed_at, stopped, _float(smoothed))


def _is_point(row: Any) -> bool:
    if not isinstance(row, list) or len(row) != 4 or type(row[0]) is not int:
        return False
    return _is_loss(row[1]) and _is_loss(row[2], None) and _is_loss(row[3])  # (the lr too: finite, >= 0)


def _is_loss(value: Any, *allowed: None) -> bool:
    """A finite number >= 0 (or None, when allowed)."""
    if value is None:
        return bool(allowed)
    return type(value) in (float, int) and math.isfinite(value) and value >= 0


def _float(value: float | int | None) -> float | None:
    return None if value is None else float(value)
