"""The fast training loop: hand-derived steps, several per compiled call when a compiler is there.

Steps are grouped in chunks of `STEPS_PER_CALL` aligned to absolute step numbers, and the
compiled chunk always runs all of its steps, masking those outside the requested range (see
`update_`). Step s therefore always runs the same compiled code, at position s % STEPS_PER_CALL,
with the same inputs, whether the run was split into segments, interrupted or resumed: the
result is bit-identical to an uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bnnames.config import TrainConfig
from bnnames.examples import Source
from bnnames.model import NamesModel
from bnnames.training.fast.batches import BatchDraws
from bnnames.training.fast.cache import compile_cache
from bnnames.training.fast.plan import Plan, state_of
from bnnames.training.fast.step import forward_backward, update_
from bnnames.training.loop import Reporter, report

STEPS_PER_CALL = 8  # compiled steps per call: amortises the call overhead; more lengthens the compile
COMPILE_OPTIONS = {"cpp_wrapper": True}  # one C++ file per graph: a 2-3x shorter cold compile

ChunkFn = Callable[..., torch.Tensor]
Params = list[torch.Tensor]
Buffers = list[list[torch.Tensor]]


def make_chunk_fn(plan: Plan, steps: int, weight_decay: float = 0.0) -> ChunkFn:
    """`steps` masked SGD steps: (params, buffers, ctx (S,B,T), target (S,B), keeps [(S,B,W)], lr (S,),
    active (S,)) -> losses (S,)."""

    def chunk(
        params: Params,
        buffers: Buffers,
        ctx: torch.Tensor,
        target: torch.Tensor,
        keeps: list[torch.Tensor],
        lr: torch.Tensor,
        active: torch.Tensor,
    ) -> torch.Tensor:
        losses = []
        for k in range(steps):
            loss, grads, stats = forward_backward(plan, params, ctx[k], target[k], [keep[k] for keep in keeps])
            update_(plan, params, buffers, grads, stats, lr[k], active[k], weight_decay)
            losses.append(loss)
        return torch.stack(losses)

    return chunk


def mark_vocab_dynamic(params: Params, buffers: Buffers) -> None:
    """Compile one step for every alphabet size: the vocabulary's dimensions become symbolic.

    The vocabulary is the embedding table's first dimension; it recurs in the output layer (and
    in a BatchNorm on the logits). A names file with another alphabet then loads the compiled
    step from the cache instead of compiling again (measured on the default model: 3% more CPU
    a step, paired in one process). A hidden width that happens to equal it is marked too: only
    a hint (`maybe_`), so it stays correct, merely generic.
    """
    vocab = params[0].shape[0]
    for tensor in [*params, *(b for norm in buffers for b in norm)]:
        for dim, size in enumerate(tensor.shape):
            if size == vocab:
                torch._dynamo.maybe_mark_dynamic(tensor, dim)


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
        self.chunk: ChunkFn | None = None
        if compiled:
            self.chunk = torch.compile(  # static shapes, but for the dimensions `mark_vocab_dynamic` marks
                make_chunk_fn(plan, STEPS_PER_CALL, config.weight_decay),
                fullgraph=True,
                dynamic=None,
                options=COMPILE_OPTIONS,
            )
        self.compiled_once = False
        self._schedules: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

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
            while step < stop and not should_stop():
                done, losses = self._advance(params, buffers, draws, step, stop)
                for k in range(done):
                    at = step + k + 1  # steps done after this one
                    if at % report_every == 0 or at == stop:
                        report(losses[k].item(), at, self.config.lr_at(at - 1), on_report)
                step += done
        draws.sync(step)
        return step

    def _advance(
        self, params: Params, buffers: Buffers, draws: BatchDraws, step: int, stop: int
    ) -> tuple[int, torch.Tensor]:
        """Run the steps from `step` to the end of its chunk (or `stop`): (steps done, their losses)."""
        if self.chunk is not None:
            first = step - step % STEPS_PER_CALL  # the chunk's first step, aligned
            end = min(first + STEPS_PER_CALL, stop)
            ctx, target, keeps = draws.take(step, end - step)  # (n, B, T), (n, B), [(n, B, W)]
            if end - step < STEPS_PER_CALL:  # a partial chunk: pad with masked steps
                before, after = step - first, first + STEPS_PER_CALL - end
                ctx, target = _pad(ctx, before, after), _pad(target, before, after)
                keeps = [_pad(keep, before, after) for keep in keeps]
            lr, active = self._schedule(first, step, end, params[0].dtype)
            losses = self._call_chunk(params, buffers, ctx, target, keeps, lr, active)
            if losses is not None:
                return end - step, losses[step - first : end - first]
            draws.rewind(step)  # the compile failed before computing anything: redo this step eagerly
        ctx, target, keeps = draws.take(step, 1)
        loss, grads, stats = forward_backward(self.plan, params, ctx[0], target[0], [keep[0] for keep in keeps])
        update_(
            self.plan, params, buffers, grads, stats, self.config.lr_at(step), weight_decay=self.config.weight_decay
        )
        return 1, loss[None]

    def _call_chunk(self, params: Params, buffers: Buffers, *args: torch.Tensor | list) -> torch.Tensor | None:
        """The compiled chunk's losses, or None (said once) if it cannot be compiled here."""
        assert self.chunk is not None
        if self.compiled_once:
            return self.chunk(params, buffers, *args)
        self.note("compiling the training step for this CPU (seconds; cached for later runs)")
        mark_vocab_dynamic(params, buffers)
        try:
            with compile_cache(self.note):  # the first call compiles, or loads the compiled step
                losses = self.chunk(params, buffers, *args)
        except Exception as err:  # noqa: BLE001 - no C++ compiler, or an inductor limit: the eager step is exact too
            lines = str(err).strip().splitlines()
            self.note(
                f"torch.compile failed ({lines[0][:160] if lines else type(err).__name__}): "
                "training with the eager fast step instead"
            )
            self.chunk = None
            return None
        self.compiled_once = True
        return losses

    def _schedule(self, first: int, step: int, end: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Learning rates (S,) and active mask (S,) of the chunk at `first`, cached (few distinct ones)."""
        steps = range(first, first + STEPS_PER_CALL)
        key = (tuple(self.config.lr_at(s) for s in steps), tuple(step <= s < end for s in steps))
        if key not in self._schedules:
            self._schedules[key] = (torch.tensor(key[0], dtype=dtype), torch.tensor(key[1]))
        return self._schedules[key]


def _pad(t: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """`t` (n, ...) with copies of its first step before and after: a whole chunk of steps."""
    return torch.cat([t[:1].expand(before, *t.shape[1:]), t, t[:1].expand(after, *t.shape[1:])])
