"""The fast inference path: each BatchNorm folded into the Linear layer before it, and each
distinct context run once.

In eval mode BatchNorm is a fixed affine map per feature (the paper's Algorithm 2, step 11), so
it folds into the Linear before it (`BatchNorm.fold_into`), which saves a pass over every
activation; the folded network differs from the layer-by-layer one only by float32 rounding
(tests check it). What a layer allows (folding, sharing rows, merging, passing through) it
says itself (`bnnames.model.Layer`); only the Embedding (the rows a position can hold) and the
Linear (whose product splits by parts) are named here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bnnames.examples import Source
from bnnames.model import Embedding, Layer, Linear, NamesModel

GATHER = 1 << 20  # examples gathered at a time by a whole-split pass: about 40 MB of rows
DENSE = 1 << 24  # at most this many count slots (128 MB) when counting rows without sorting


class Folded(nn.Module):
    """An eval-only network: `model`'s layers with Linear -> BatchNorm pairs folded, each distinct
    group of positions computed once.

    When every layer but a merge acts on each position's vector alone (its `per_position`), the
    network can carry `rows` (R, C), the distinct vectors, and `index` (N, T'), which row each position
    holds. A merge of n neighbours (the wavenet's FlattenConsecutive) then makes one row per
    distinct group of n rows: the first level of the wavenet sees at most vocab**2 character
    pairs instead of N * T / 2 positions. A Linear after a merge is a sum of products, one per
    part of the concatenation, so when there are fewer rows below than groups above, each part's
    product is taken once per row below (`_merged_linear`); docs/performance.md has what both
    save. A layer that mixes positions
    (or does not declare `per_position`) makes the whole network run layer by layer instead.
    """

    def __init__(self, layers: Sequence[Layer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(fold_layers(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layers' output for contexts x (N, T) of ids: (N, T', C), or (N, C) once merged to one."""
        first, *rest = self.layers
        shares_rows = all(layer.per_position or layer.merge_size(x.shape[1]) is not None for layer in rest)
        if type(first) is not Embedding or not shares_rows:  # (a merge Folded groups itself)
            return nn.Sequential(*self.layers)(x)  # no ids to share rows by, or a layer mixes positions
        rows, index, merged = first.weight, x, False  # rows (V, E): what one position can hold
        at = 0
        while at < len(rest):
            layer = rest[at]
            after = rest[at + 1] if at + 1 < len(rest) else None
            at += 1
            n = layer.merge_size(index.shape[1])
            if n is None:
                rows = layer(rows)
                continue
            groups = index.reshape(-1, n)  # (N * T' / n, n): the rows each new position joins
            if n == index.shape[1]:  # the whole context: one row per context, as many as given
                keys, inverse = groups, torch.arange(len(groups), device=x.device)
            else:
                keys, inverse, _ = distinct_contexts(groups)
            if type(after) is Linear and len(rows) < len(keys):  # the merge and the Linear in one
                rows = _merged_linear(rows, keys, after)
                at += 1
            else:
                rows = _gather(rows, keys).reshape(len(keys), -1)
            index = inverse.reshape(len(x), -1)
            merged = index.shape[1] == 1
        return _gather(rows, index[:, 0] if merged else index)


def _merged_linear(rows: torch.Tensor, keys: torch.Tensor, linear: nn.Module) -> torch.Tensor:
    """linear(rows[keys] concatenated) for rows (R, C), keys (R', n): (R', out), as the sum over
    the n parts of (rows @ its block of the weight) gathered, n * R products instead of R' * n."""
    n, channels = keys.shape[1], rows.shape[1]
    parts = rows @ linear.weight.reshape(n, channels, -1)  # (n, R, out)
    out = _gather(parts[0], keys[:, 0])  # (R', out)
    for k in range(1, n):
        out.add_(_gather(parts[k], keys[:, k]))
    return out if linear.bias is None else out.add_(linear.bias)


def _gather(rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """rows[index] for rows (R, C) and any shape of index: (*index.shape, C), by index_select, which
    is several times faster than advanced indexing on the CPU here (docs/performance.md)."""
    return rows.index_select(0, index.reshape(-1)).reshape(*index.shape, rows.shape[1])


@torch.no_grad()
def fold_layers(layers: Sequence[Layer]) -> list[Layer]:
    """The layers as eval mode runs them: each layer that folds into the one before it (a
    BatchNorm after a Linear) merged with it, and none that eval mode passes through (Dropout)."""
    out: list[Layer] = []
    for layer in layers:
        if layer.eval_identity:
            continue
        merged = layer.fold_into(out[-1]) if out else None
        if merged is not None:
            out[-1] = merged
        else:
            out.append(layer.eval())
    return out


def folded(model: NamesModel) -> Folded:
    """`model` for inference with its current statistics choice (running or calibrated)."""
    return Folded(list(model.layers))


def distinct_contexts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (N, T) ids -> contexts (U, T), inverse (N,) with x == contexts[inverse], counts (U,).

    182,625 training examples hold only 5,438 different contexts. In eval mode a model maps a
    context to the same logits whatever else is in the batch, so running each distinct context
    once, weighted by how often it occurs, gives the losses and BatchNorm statistics of the whole
    split for a fraction of the work.
    """
    base = int(x.max()) + 1 if x.numel() else 1
    if base ** x.shape[1] >= 2**62:  # too many possible contexts for one int64 key: sort the rows
        return torch.unique(x, dim=0, return_inverse=True, return_counts=True)
    keys, inverse, counts = torch.unique(_keys(x, base), return_inverse=True, return_counts=True)
    return _digits(keys, base, x.shape[1]), inverse, counts


def count_rows(examples: Source, targets: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct rows of a whole split and how often each occurs: rows (U, T), or (U, T + 1)
    with each context's target last when `targets`, and counts (U,) int64.

    The split is read GATHER examples at a time, so memory follows the distinct rows, not the
    split: when every possible row has a slot (vocab_size ** width <= DENSE) each chunk is counted
    into them (no sort), else its distinct rows are merged with the ones found so far.
    """
    base, width = examples.vocab_size, examples.block_size + targets
    dense = torch.zeros(base**width if base**width <= DENSE else 0, dtype=torch.long, device=examples.device)
    rows = torch.zeros((0, width), dtype=torch.long, device=examples.device)
    counts = torch.zeros(0, dtype=torch.long, device=examples.device)
    for x, y in examples.chunks(GATHER):
        part = torch.cat([x, y[:, None]], 1) if targets else x  # (B, width)
        if len(dense):
            dense.index_add_(0, _keys(part, base), torch.ones_like(y))
            continue
        rows, inverse, _ = distinct_contexts(torch.cat([rows, part]))
        counts = torch.zeros(len(rows), dtype=torch.long, device=rows.device).index_add_(
            0, inverse, torch.cat([counts, torch.ones_like(y)])
        )
    if len(dense):
        keys = dense.nonzero().flatten()
        return _digits(keys, base, width), dense[keys]
    return rows, counts


def _keys(x: torch.Tensor, base: int) -> torch.Tensor:
    """Each row of ids (N, W) as one int64, its digits in base `base`: (N,)."""
    powers = base ** torch.arange(x.shape[1] - 1, -1, -1, device=x.device)  # (W,)
    return (x * powers).sum(1)


def _digits(keys: torch.Tensor, base: int, width: int) -> torch.Tensor:
    """The rows (N, width) that `_keys` made the keys (N,) of."""
    powers = base ** torch.arange(width - 1, -1, -1, device=keys.device)
    return keys[:, None] // powers % base
