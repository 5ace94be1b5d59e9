"""Mini-batches for many steps at once, with the generator state of any single step on demand.

The reference draws each step's indices with `torch.randint(0, N, (B,), generator=g)`. On the
CPU one draw of (D * B,) values yields exactly the same indices as D draws of (B,), and leaves
the generator in the same state (tests check both), so drawing a block of steps at once
changes no number. Only the generator then runs ahead of the steps done: `sync` replays the
block's draws from the state saved before it, to leave the state a per-step loop would have.

With dropout, each step also draws one mask per dropout layer after its indices (the order of
`bnnames.model.Dropout`), so the steps of a block are drawn one after another instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bnnames.examples import Source, as_examples
from bnnames.model import draw_keep

BLOCK_STEPS = 4096  # steps drawn per randint: 4096 x 32 indices = 1 MB, and one gather per block
MASK_BLOCK_STEPS = 256  # with dropout: 256 x 32 x 200 bool masks = 1.6 MB per dropout layer
# blocks end at multiples of BLOCK_STEPS (or at the last step asked for: nothing is drawn ahead of it)


Batch = tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]  # ctx (S, B, T), target (S, B), keeps [(S, B, W)]


class BatchDraws:
    """Contexts, targets and dropout masks of steps start, start+1, ... for `x` (N, T), `y` (N,)
    (or a stream), in order.

    `dropouts` holds (p, width) of each dropout layer, input side first (empty: no masks).
    """

    def __init__(
        self,
        x: torch.Tensor | Source,
        y: torch.Tensor | None,
        batch_size: int,
        generator: torch.Generator,
        start: int,
        stop: int | None = None,
        block_steps: int = BLOCK_STEPS,
        dropouts: Sequence[tuple[float, int]] = (),
    ) -> None:
        self.examples, self.batch_size, self.generator = as_examples(x, y), batch_size, generator
        self.stop = stop  # the last step asked for, if known: a block ends there
        self.dropouts = tuple(dropouts)
        self.block_steps = min(block_steps, MASK_BLOCK_STEPS) if self.dropouts else block_steps
        self._reset(start)

    def take(self, step: int, count: int) -> Batch:
        """ctx (count, B, T), target (count, B) and keeps [(count, B, W)] of steps [step, step + count),
        asked in order."""
        parts: list[Batch] = []
        while count > 0:
            if step >= self.block_end:
                self._draw_block()
            lo, hi = step - self.block_start, min(step + count, self.block_end) - self.block_start
            parts.append((self.ctx[lo:hi], self.target[lo:hi], [keep[lo:hi] for keep in self.keeps]))
            count -= hi - lo
            step += hi - lo
        if len(parts) == 1:
            return parts[0]
        keeps = [torch.cat([part[2][k] for part in parts]) for k in range(len(self.dropouts))]
        return torch.cat([part[0] for part in parts]), torch.cat([part[1] for part in parts]), keeps

    def _draw_block(self) -> None:
        self.block_start, self.block_state = self.block_end, self.generator.get_state()
        self.block_end = (self.block_start // self.block_steps + 1) * self.block_steps  # aligned ends
        if self.stop is not None and self.block_start < self.stop:
            self.block_end = min(self.block_end, self.stop)  # a segment's end: no draws to replay there
        steps = self.block_end - self.block_start
        ix, keeps = self._draw(steps)
        ctx, target = self.examples.gather(ix.to(self.examples.device))  # (steps * B, T), (steps * B,)
        self.ctx = ctx.reshape(steps, self.batch_size, -1)
        self.target = target.reshape(steps, self.batch_size)
        self.keeps = [keep.to(self.examples.device) for keep in keeps]

    def _draw(self, steps: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The draws of `steps` steps: indices (steps * B,) and one (steps, B, W) mask per dropout layer."""
        n, m = len(self.examples), self.batch_size
        if not self.dropouts:
            return torch.randint(0, n, (steps * m,), generator=self.generator), []
        ix, keeps = [], []
        for _ in range(steps):  # a step's indices, then its masks, as the reference loop draws them
            ix.append(torch.randint(0, n, (m,), generator=self.generator))
            keeps.append([draw_keep((m, width), p, self.generator) for p, width in self.dropouts])
        return torch.cat(ix), [torch.stack(layer) for layer in zip(*keeps)]

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
        self.keeps = [torch.zeros(0, self.batch_size, width, dtype=torch.bool) for _, width in self.dropouts]

    def sync(self, step: int) -> None:
        """Leave the generator as if exactly the draws of steps before `step` had been made.

        `step` is in the current block (or at its end): the step after the last one taken.
        """
        if not self.block_start <= step <= self.block_end:
            raise ValueError(f"step {step} is outside the drawn block [{self.block_start}, {self.block_end}]")
        if step == self.block_end:
            return  # the generator is where the block's draws left it
        self.generator.set_state(self.block_state)
        ahead = step - self.block_start
        if ahead > 0:
            self._draw(ahead)
