"""The loss history a checkpoint keeps: train and val loss at log-spaced steps and every evaluation.

The curve (bnnames.schedule) holds the val loss every --eval-every steps: a 2,000-step run has
two points, both late. The history adds about POINTS_PER_DECADE points per decade of steps from
step 1 (1, 2, 3, 4, 6, 7, 10, 13, 18, 24, ...), so a short run has a real curve on a log axis,
plus every evaluation of the curve. At each point:
- train: the mean of the mini-batch losses the loop reported since the previous point (training
  mode; the loops report every 100th step and the step a segment ends on, so before step 100 it
  is the one mini-batch of that step, later the mean of a few);
- val: the whole val split in eval mode with the running statistics, as the curve measures it;
- seconds: the wall time spent in `bnnames train` until then.
No torch here: the checkpoint stores it as JSON metadata (`history`, optional: older files have
none) and bnnames.training.history records it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bnnames.errors import CheckpointError

POINTS_PER_DECADE = 8


@dataclass(frozen=True)
class HistoryPoint:
    step: int  # optimisation steps done
    train: float | None  # mean reported mini-batch loss since the previous point (None: none reported)
    val: float  # whole val split, eval mode, running statistics
    seconds: float  # wall seconds of training when measured


@dataclass(frozen=True)
class History:
    points: tuple[HistoryPoint, ...] = ()
    seconds: float = 0.0  # wall seconds of training up to the checkpoint's step


def next_log_step(step: int) -> int:
    """The first log-spaced step after `step`: round(10 ** (k / POINTS_PER_DECADE)) for k = 0, 1, ..."""
    k = max(0, math.floor(POINTS_PER_DECADE * math.log10(step)) - 1) if step >= 1 else 0
    while (candidate := round(10 ** (k / POINTS_PER_DECADE))) <= step:
        k += 1
    return candidate


def is_log_step(step: int) -> bool:
    return step >= 1 and next_log_step(step - 1) == step


def history_to_json(history: History) -> dict[str, Any]:
    return {"points": [[p.step, p.train, p.val, p.seconds] for p in history.points], "seconds": history.seconds}


def history_from_json(data: Any, step: int) -> History:
    """Rebuild a stored history, refusing anything a run could not have written."""
    if not isinstance(data, dict) or set(data) != {"points", "seconds"}:
        raise CheckpointError("history must be an object with points and seconds")
    rows, seconds = data["points"], data["seconds"]
    if not isinstance(rows, list) or not all(_is_row(row) for row in rows) or not _is_number(seconds):
        raise CheckpointError("history points must be [step, train, val, seconds] with finite values")
    points = tuple(HistoryPoint(row[0], _float(row[1]), float(row[2]), float(row[3])) for row in rows)
    steps = [p.step for p in points]
    if steps != sorted(set(steps)) or any(not 1 <= s <= step for s in steps):
        raise CheckpointError(f"history steps must increase and lie within 1..{step}")
    return History(points, float(seconds))


def _is_row(row: Any) -> bool:
    if not isinstance(row, list) or len(row) != 4 or type(row[0]) is not int:
        return False
    return (row[1] is None or _is_number(row[1])) and _is_number(row[2]) and _is_number(row[3])


def _is_number(value: Any) -> bool:
    return type(value) in (float, int) and math.isfinite(value) and value >= 0


def _float(value: float | int | None) -> float | None:
    return None if value is None else float(value)
