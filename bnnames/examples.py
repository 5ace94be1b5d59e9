"""The (context, next character) examples of a split, gathered from a compact token stream.

Building every example as its own row of int64 ids costs 8 x (block_size + 1) bytes per
character of the file. Here a split keeps only the file's token stream (one byte per character
for up to 255 symbols), where each name is followed by the end token, and gathers the rows of
a mini-batch when it is drawn:

    tokens   e m m a .  b o .  ...          names in file order, each ended by BOUNDARY (.)
    split    bo, emma, ...                  the split's names, in shuffled order

    example  0    1    2    3    4    5    6    7          (block_size 3)
    context  ...  ..b  .bo  ...  ..e  .em  emm  mma
    target   b    o    .    e    m    m    a    .

Example i of a split is row i of the notebook's construction (`build_dataset`): the names in
split order, each position of each name, end token included. The contexts' positions before a
name's start read BOUNDARY, as the notebook's leading dots.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

BOUNDARY = 0  # id of the token that marks both the start and the end of a name


@dataclass(frozen=True, eq=False)
class Examples:
    """A split's examples: `gather(ix)` builds rows ix of the whole split's (x (N, T), y (N,))."""

    tokens: torch.Tensor  # (C,) the whole file's ids, each name followed by BOUNDARY; narrow dtype
    begin: torch.Tensor  # (M,) int64: where each of the split's names begins in `tokens`, split order
    first: torch.Tensor  # (M + 1,) int64: the index of each name's first example; first[M] = N
    name_of: torch.Tensor  # (N,) int32: the name each example belongs to (4 bytes an example: a
    # lookup instead of a binary search in `first` at every training step; docs/performance.md)
    block_size: int  # T

    @classmethod
    def of(cls, tokens: torch.Tensor, starts: torch.Tensor, names: torch.Tensor, block_size: int) -> Examples:
        """The examples of names `names` (M,) in this order; name k is tokens[starts[k]:starts[k + 1]]."""
        begin = starts[names]
        sizes = starts[names + 1] - begin  # (M,) characters + 1: a name's examples
        first = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)])
        name_of = torch.repeat_interleave(torch.arange(len(names), dtype=torch.int32), sizes)
        return cls(tokens, begin, first, name_of, block_size)

    def __len__(self) -> int:
        return int(self.first[-1])

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    @property
    def vocab_size(self) -> int:
        """One more than the largest id: the base of distinct-context keys."""
        return int(self.tokens.max()) + 1

    def to(self, device: torch.device) -> Examples:
        moved = (t.to(device) for t in (self.tokens, self.begin, self.first, self.name_of))
        return Examples(*moved, self.block_size)

    def gather(self, ix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Contexts x (B, T) and targets y (B,), int64, of the examples ix (B,) (on this device)."""
        name = self.name_of[ix].long()  # (B,) which name each example is in
        return self._rows(name, ix - self.first[name])

    def chunks(self, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every example in order, whole names of about `size` examples at a time: a bounded pass."""
        names = len(self.begin)
        step = max(1, size * names // len(self))  # names a chunk
        for a in range(0, names, step):
            b = min(a + step, names)
            lo, hi = int(self.first[a]), int(self.first[b])
            ix = torch.arange(lo, hi, device=self.device)
            name = self.name_of[lo:hi].long()
            yield self._rows(name, ix - self.first[name])

    def _rows(self, name: torch.Tensor, at: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T), y (B,) of position `at` (B,) (0 .. its length) in split name `name` (B,)."""
        back = torch.arange(-self.block_size, 0, device=at.device)  # (T,) the context's offsets
        pos = at[:, None] + back  # (B, T) positions in the name; negative: before its start
        start = self.begin[name]  # (B,)
        ids = self.tokens[(start[:, None] + pos).clamp_min(0)].long()
        x = torch.where(pos >= 0, ids, BOUNDARY)
        return x, self.tokens[start + at].long()


@dataclass(frozen=True, eq=False)
class ExampleTensors:
    """Examples already built as tensors (tests, small experiments): the same interface."""

    x: torch.Tensor  # (N, T)
    y: torch.Tensor  # (N,)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def block_size(self) -> int:
        return self.x.shape[1]

    @property
    def vocab_size(self) -> int:
        return int(max(self.x.max(), self.y.max())) + 1 if len(self) else 1

    def gather(self, ix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[ix], self.y[ix]

    def chunks(self, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return zip(self.x.split(size), self.y.split(size))


Source = Examples | ExampleTensors


def as_examples(x: torch.Tensor | Source, y: torch.Tensor | None = None) -> Source:
    """What the loops read examples from: `x` itself, or the tensors (x (N, T), y (N,))."""
    if isinstance(x, torch.Tensor):
        if y is None:
            raise TypeError("examples given as a tensor of contexts need their targets y")
        return ExampleTensors(x, y)
    return x
