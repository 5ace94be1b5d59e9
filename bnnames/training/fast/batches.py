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

from collections.abc import Iterator, Sequence
from itertools import repeat

import torch

from bnnames.examples import Source, as_examples
from bnnames.model import draw_keep

BLOCK_STEPS = 4096  # steps drawn per randint: 4096 x 32 indices = 1 MB, and one gather per block
MASK_BLOCK_STEPS = 256  # with dropout: 256 x 32 x 200 bool masks = 1.6 MB per dropout layer
# blocks end at multiples of BLOCK_STEPS, or at `stop`: nothing is drawn past the last step asked for
UNBIND = 128  # steps split into per-step views at a time: 0.6 us a view, 2.3 us when 4,096 at once

Step = tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]  # ctx (B, T), target (B,), keeps ((B, W), ...)


class BatchDraws:
    """Contexts, targets and dropout masks of steps start, start+1, ..., stop - 1 for `x` (N, T),
    `y` (N,) (or a stream), in order (`steps`).

    `dropouts` holds (p, width) of each dropout layer, input side first (empty: no masks).
    """

    def __init__(
        self,
        x: torch.Tensor | Source,
        y: torch.Tensor | None,
        batch_size: int,
        generator: torch.Generator,
        start: int,
        stop: int,
        block_steps: int = BLOCK_STEPS,
        dropouts: Sequence[tuple[float, int]] = (),
    ) -> None:
        self.examples, self.batch_size, self.generator = as_examples(x, y), batch_size, generator
        self.stop = stop  # one past the last step asked for: a block ends there at the latest
        self.dropouts = tuple(dropouts)
        self.block_steps = min(block_steps, MASK_BLOCK_STEPS) if self.dropouts else block_steps
        self.block_start = self.block_end = start  # steps [block_start, block_end) are drawn
        self.block_state = generator.get_state()  # the state before the block's draw

    def steps(self) -> Iterator[Step]:
        """Each step's batch, in order, drawing each block when it is reached: a caller that stops
        early is always inside the current block, where `sync` can leave the generator."""
        while self.block_end < self.stop:
            self._draw_block()
            for lo in range(0, len(self.ctx), UNBIND):
                part = slice(lo, lo + UNBIND)
                masks = zip(*(keep[part].unbind(0) for keep in self.keeps)) if self.keeps else repeat(())
                yield from zip(self.ctx[part].unbind(0), self.target[part].unbind(0), masks)

    def _draw_block(self) -> None:
        self.block_start, self.block_state = self.block_end, self.generator.get_state()
        aligned = (self.block_start // self.block_steps + 1) * self.block_steps
        self.block_end = min(aligned, self.stop)  # a segment's end: no draws to replay there
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
