"""The hook that records a run's loss history (bnnames.history) between its training segments.

A run ends a segment at every log-spaced step (`next_stop`), the hook hears every reported
mini-batch loss (`reported`) and records a point after the segment (`at_stop`). It never draws
from the training generator and never moves the running statistics (eval mode, the Validator's
measurement), so a run is the same with its history as without. At an evaluation the point takes
the curve's val loss, so evaluations cost nothing more; what the other points cost is in
docs/performance.md.
"""

from __future__ import annotations

import dataclasses
import math
import time

from bnnames.history import History, HistoryPoint, is_log_step, next_log_step
from bnnames.model import NamesModel
from bnnames.schedule import Curve
from bnnames.training.hooks import Hook, Run
from bnnames.training.validation import Validator


class HistoryRecorder(Hook):
    """Keeps `history` growing as the run goes; `state()` is what the checkpoint stores."""

    def __init__(self, history: History | None, total_steps: int, validator: Validator) -> None:
        self.history = history or History()  # a checkpoint written before histories starts one here
        self.total_steps, self.validator = total_steps, validator
        self._started, self._offset = time.perf_counter(), self.history.seconds
        self._sum, self._count = 0.0, 0  # mini-batch losses reported since the last point

    def next_stop(self, step: int) -> int:
        return next_log_step(step)

    def reported(self, step: int, loss: float, lr: float) -> None:
        self._sum += loss
        self._count += 1

    def at_stop(self, run: Run) -> None:
        self.record(run.model, run.step, self.validator.curve)  # after the evaluation: its val loss is reused
        run.ckpt = dataclasses.replace(run.ckpt, history=self.state())

    def record(self, model: NamesModel, step: int, curve: Curve) -> None:
        """A point after `step` steps if it is log-spaced, an evaluation or the last step, and new."""
        evaluated = bool(curve.points) and curve.points[-1].step == step
        due = is_log_step(step) or evaluated or step == self.total_steps
        if not due or (self.history.points and self.history.points[-1].step >= step):
            return
        val = curve.points[-1].val if evaluated else self._val_loss(model)  # (the Validator's measurement)
        if not math.isfinite(val):  # the loss ceiling stops such a run; its file must stay loadable
            return
        train = self._sum / self._count if self._count else None
        point = HistoryPoint(step, train, val, self._seconds())
        self.history = dataclasses.replace(self.history, points=(*self.history.points, point))
        self._sum, self._count = 0.0, 0

    def state(self) -> History:
        return dataclasses.replace(self.history, seconds=self._seconds())

    def _seconds(self) -> float:
        return self._offset + time.perf_counter() - self._started

    def _val_loss(self, model: NamesModel) -> float:
        model.use_stats("running")
        return self.validator.loss(model)
