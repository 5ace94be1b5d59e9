"""Mini-batches for many steps at once, with the generator state of any single step on demand.

The reference draws each step's indices with `torch.randint(0, N, (B,), generator=g)`. On the
CPU one draw of (D * B,) values yields exactly the same indices as D draws of (B,), and leaves
the generator in the same state (tests check both), so drawing a block of steps at once
changes no number. Only the generator then runs ahead of the steps done: `sync` replays the
block's draws from the state saved before it, to leave the state a per-step loop would have.
"""

from __future__ import annotations

import torch

from bnnames.examples import Source, as_examples

BLOCK_STEPS = 4096  # steps drawn per randint: 4096 x 32 indices = 1 MB, and one gather per block
# blocks end at multiples of BLOCK_STEPS, a multiple of the compiled chunk, so no chunk straddles two


class BatchDraws:
    """Contexts and targets of steps start, start+1, ... for `x` (N, T), `y` (N,) (or a stream), in order."""

    def __init__(
        self,
        x: torch.Tensor | Source,
        y: torch.Tensor | None,
        batch_size: int,
        generator: torch.Generator,
        start: int,
        block_steps: int = BLOCK_STEPS,
    ) -> None:
        self.examples, self.batch_size, self.generator = as_examples(x, y), batch_size, generator
        self.block_steps = block_steps
        self._reset(start)

    def take(self, step: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """ctx (count, B, T) and target (count, B) of steps [step, step + count), asked in order."""
        ctxs, targets = [], []
        while count > 0:
            if step >= self.block_end:
                self._draw_block()
            lo, hi = step - self.block_start, min(step + count, self.block_end) - self.block_start
            ctxs.append(self.ctx[lo:hi])
            targets.append(self.target[lo:hi])
            count -= hi - lo
            step += hi - lo
        return (ctxs[0], targets[0]) if len(ctxs) == 1 else (torch.cat(ctxs), torch.cat(targets))

    def _draw_block(self) -> None:
        self.block_start, self.block_state = self.block_end, self.generator.get_state()
        self.block_end = (self.block_start // self.block_steps + 1) * self.block_steps  # aligned ends
        steps = self.block_end - self.block_start
        ix = torch.randint(0, len(self.examples), (steps * self.batch_size,), generator=self.generator)
        ctx, target = self.examples.gather(ix.to(self.examples.device))  # (steps * B, T), (steps * B,)
        self.ctx = ctx.reshape(steps, self.batch_size, -1)
        self.target = target.reshape(steps, self.batch_size)

    def rewind(self, step: int) -> None:
        """Forget what was drawn ahead of `step` (in the current block): the next draw starts there."""
        self.sync(step)
        self._reset(step)

    def _reset(self, step: int) -> None:
        self.block_start = self.block_end = step  # steps [block_start, block_end) are drawn
        self.block_state = self.generator.get_state()  # the state before the block's draw
        self.ctx = torch.zeros(
            (0, self.batch_size, self.examples.block_size), dtype=torch.long, device=self.examples.device
        )
        self.target = torch.zeros((0, self.batch_size), dtype=torch.long, device=self.examples.device)

    def sync(self, step: int) -> None:
        """Leave the generator as if exactly the draws of steps before `step` had been made.

        `step` is in the current block (or at its end): the step after the last one taken.
        """
        if not self.block_start <= step <= self.block_end:
            raise ValueError(f"step {step} is outside the drawn block [{self.block_start}, {self.block_end}]")
        self.generator.set_state(self.block_state)
        ahead = step - self.block_start
        if ahead > 0:
            torch.randint(0, len(self.examples), (ahead * self.batch_size,), generator=self.generator)
