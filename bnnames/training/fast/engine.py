"""The fast training loop: the hand-derived step, compiled ahead of time when a compiler is there.

The compiled step (`compiled.py`) is one native call per SGD step; the eager step runs the same
hand-derived arithmetic op by op. Either way each step is the same code whatever the segment
it falls in, so a run split into segments, interrupted or resumed is bit-identical to an
uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from bnnames.config import TrainConfig
from bnnames.examples import Source
from bnnames.model import NamesModel
from bnnames.training.fast.batches import BatchDraws
from bnnames.training.fast.compiled import StepFn, native_step
from bnnames.training.fast.plan import Plan, state_of
from bnnames.training.fast.step import forward_backward, update_
from bnnames.training.loop import Reporter, report


class FastTrainer:
    """Trains one model with the hand-derived step, compiled (`note` says if that fails) or eager."""

    def __init__(
        self,
        model: NamesModel,
        plan: Plan,
        config: TrainConfig,
        compiled: bool,
        note: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.model, self.plan, self.config, self.note = model, plan, config, note
        self.compiled = compiled  # until the first step: then `native` holds the compiled step
        self.native: StepFn | None = None
        self._lrs: dict[float, torch.Tensor] = {}

    def __call__(
        self,
        x: torch.Tensor | Source,
        y: torch.Tensor | None,
        generator: torch.Generator,
        start: int,
        stop: int,
        on_report: Reporter | None = None,
        report_every: int = 100,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> int:
        """Run steps [start, stop) like `bnnames.training.loop.train_steps` and return the steps done."""
        self.model.train()
        dropouts = [(spec.p, spec.width) for spec in self.plan.dropouts]
        draws = BatchDraws(x, y, self.config.batch_size, generator, start, stop, dropouts=dropouts)
        params, buffers = state_of(self.model)
        step = start
        with torch.no_grad():
            for ctx, target, keeps in draws.steps():
                if should_stop():  # asked before every step, as the reference loop does
                    break
                loss = self._step(params, buffers, ctx, target, keeps, step)
                step += 1
                if step % report_every == 0 or step == stop:
                    report(loss.item(), step, self.config.lr_at(step - 1), on_report)
        draws.sync(step)
        return step

    def _step(
        self,
        params: list[torch.Tensor],
        buffers: list[list[torch.Tensor]],
        ctx: torch.Tensor,
        target: torch.Tensor,
        keeps: Sequence[torch.Tensor],
        step: int,
    ) -> torch.Tensor:
        """Step number `step` on ctx (B, T), target (B,), keeps [(B, W)]: its loss; the state updated in place."""
        lr = self.config.lr_at(step)
        if self.compiled and self.native is None:
            self.native = self._compile(params, buffers, (ctx, target, keeps))
        if self.native is not None:
            if lr not in self._lrs:
                self._lrs[lr] = torch.tensor(lr, dtype=params[0].dtype)
            return self.native(ctx, target, keeps, self._lrs[lr])
        loss, grads, stats = forward_backward(self.plan, params, ctx, target, list(keeps))
        update_(self.plan, params, buffers, grads, stats, lr, self.config.weight_decay)
        return loss

    def _compile(self, params: list[torch.Tensor], buffers: list[list[torch.Tensor]], batch: tuple) -> StepFn | None:
        """The compiled step, or None (said once) when it cannot be compiled here."""
        try:
            return native_step(self.plan, params, buffers, batch, self.config.weight_decay, self.note)
        except Exception as err:  # noqa: BLE001 - no C++ compiler, or an inductor limit: the eager step is exact too
            lines = str(err).strip().splitlines()
            self.note(
                f"compiling the training step failed ({lines[0][:160] if lines else type(err).__name__}): "
                "training with the eager fast step instead"
            )
            self.compiled = False
            return None
