"""One SGD step of the planned network, forward and backward derived by hand (no autograd).

At the reference sizes (batch 32, 200 hidden units) a step is ~2.4 MFLOP, so autograd's
bookkeeping and per-op dispatch cost more than the arithmetic. Writing the backward pass out
keeps only the ops that compute something, and lets `torch.compile` fuse them.

Backward of BatchNorm (Ioffe & Szegedy 2015, section 3), with x_hat = (z - mu) / s:
    dgain = sum_i dy_i x_hat_i        dshift = sum_i dy_i        dx_hat = gain * dy
    dz = (dx_hat - mean(dx_hat) - x_hat * sum_i(dx_hat_i x_hat_i) / n) / s
       = gain / s * (dy - dshift / m - x_hat * dgain / n)
where s = sqrt(var + eps) with the biased variance and n = m (paper), or s = the unbiased
std with n = m - 1 (the lecture's arithmetic); m is the number of rows normalised together:
the batch size, or batch size x time positions in the wavenet (BatchNorm over batch and time).
Dropout y = x * scale (scale = keep / (1 - p), drawn before the step) has dx = dy * scale.
LayerNorm is the same arithmetic over each row's C features instead of each feature's rows:
    dz = (dx_hat - mean_C(dx_hat) - x_hat * mean_C(dx_hat * x_hat)) / s,   dx_hat = gain * dy.

Each layer kind is one forward/backward pair in `KINDS`, keyed by its spec (`plan.py`).

Activations are 2-D (rows, C) throughout (see `plan.py`): a merge of neighbours is a reshape
forward and the inverse reshape backward. The wavenet's first Linear can run on the embedding
table instead of the merged rows (`factors_first_layer`): the same sums, grouped per character.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bnnames.model import dropout_scale
from bnnames.training.fast.plan import DropoutSpec, LayerNormSpec, LinearSpec, MergeSpec, NormSpec, Plan, TanhSpec

Stats = list[tuple[torch.Tensor, torch.Tensor]]  # per BatchNorm: batch mean, batch var|std for the buffers


@dataclass
class _Pass:
    """What the layers of one step share: the batch size, the dropout masks still to use (input
    side first), and the BatchNorm batch statistics gathered for the running buffers."""

    batch: int
    masks: Iterator[torch.Tensor]
    stats: Stats


def forward_backward(
    plan: Plan,
    params: list[torch.Tensor],
    ctx: torch.Tensor,
    target: torch.Tensor,
    keeps: list[torch.Tensor] | tuple[()] = (),
) -> tuple[torch.Tensor, list[torch.Tensor], Stats]:
    """Loss, gradients (aligned with `params`) and BatchNorm batch statistics of one mini-batch.

    ctx (B, T) context ids, target (B,) next ids, keeps: one (B, width) bool mask per dropout
    layer (`plan.dropouts`), read row by row as its (rows, C) activations; nothing is modified.
    """
    m = ctx.shape[0]
    table = params[0]  # (vocab, E)
    factored = factors_first_layer(plan, table.shape[0], ctx.shape)
    layers = plan.layers[2:] if factored else plan.layers  # the merge and Linear done below, if factored
    if factored:
        first: LinearSpec = plan.layers[1]  # type: ignore[assignment]
        ids, x = _factored_forward(table, params[first.weight], ctx, plan.layers[0].n)  # type: ignore[union-attr]
        if first.bias is not None:
            x = x + params[first.bias]
    else:
        x = table[ctx].reshape(-1, table.shape[1])  # (B*T, E): one row per position
    run = _Pass(m, iter(keeps), [])
    saved: list[object] = []
    for spec in layers:
        x, keep = KINDS[type(spec)][0](spec, params, x, run)
        saved.append(keep)
    log_probs = torch.log_softmax(x, dim=1)  # x: the logits (B, vocab)
    loss = F.nll_loss(log_probs, target)  # = F.cross_entropy(logits, target)
    d = log_probs.exp().scatter_add_(1, target[:, None], log_probs.new_full((m, 1), -1.0))  # softmax - one-hot
    d = d.mul_(1 / m)  # dloss/dlogits (B, vocab)
    grads: list[torch.Tensor | None] = [None] * len(params)
    for spec, keep in zip(reversed(layers), reversed(saved)):
        d = KINDS[type(spec)][1](spec, params, d, keep, grads)
    if factored:
        if first.bias is not None:
            grads[first.bias] = d.sum(0)
        grads[first.weight], grads[0] = _factored_backward(table, params[first.weight], ids, d)
    else:  # the embedding rows each context id picked receive the gradient of its slot
        grads[0] = torch.zeros_like(table).index_add_(0, ctx.reshape(-1), d.reshape(-1, table.shape[1]))
    return loss, grads, run.stats  # type: ignore[return-value]


# Each kind: forward(spec, params, x, run) -> (y, what backward keeps), and
# backward(spec, params, dy, kept, grads) -> dx, filling its parameters' entries of `grads`.
# x and y are (rows, C) (see plan.py).


def _merge_forward(spec: MergeSpec, params: list[torch.Tensor], x: torch.Tensor, run: _Pass) -> tuple:
    return _merge(x, run.batch, spec.n), x.shape


def _merge_backward(spec: MergeSpec, params: list[torch.Tensor], d: torch.Tensor, shape, grads: list) -> torch.Tensor:
    return d.reshape(shape)  # back to the rows before the merge


def _linear_forward(spec: LinearSpec, params: list[torch.Tensor], x: torch.Tensor, run: _Pass) -> tuple:
    weight = params[spec.weight]
    return (x @ weight if spec.bias is None else torch.addmm(params[spec.bias], x, weight)), x


def _linear_backward(spec: LinearSpec, params: list[torch.Tensor], d: torch.Tensor, x, grads: list) -> torch.Tensor:
    grads[spec.weight] = x.t() @ d  # (fan_in, fan_out)
    if spec.bias is not None:
        grads[spec.bias] = d.sum(0)
    return d @ params[spec.weight].t()


def _norm_forward(spec: NormSpec, params: list[torch.Tensor], z: torch.Tensor, run: _Pass) -> tuple:
    """Algorithm 1 on z (rows, C); the batch statistics go to `run.stats` for the buffers."""
    m = z.shape[0]
    mean = z.mean(0)  # (torch.var_mean is many times slower over the batch dimension at this size)
    centred = z - mean
    sq = (centred * centred).sum(0)
    if spec.lecture:
        std = torch.sqrt(sq / (m - 1))  # unbiased std, no eps, as the notebook's z.std(0)
        inv, spread = std.reciprocal(), std
    else:
        var = sq / m  # the biased batch variance normalises; the buffer gets the unbiased one
        inv, spread = torch.rsqrt(var + spec.eps), var * (m / max(m - 1, 1))
    x_hat = centred * inv
    run.stats.append((mean, spread))
    return torch.addcmul(params[spec.shift], params[spec.gain], x_hat), (x_hat, inv)


def _norm_backward(spec: NormSpec, params: list[torch.Tensor], d: torch.Tensor, kept, grads: list) -> torch.Tensor:
    x_hat, inv = kept
    dgain = grads[spec.gain] = (d * x_hat).sum(0)
    dshift = grads[spec.shift] = d.sum(0)
    rows = d.shape[0]  # B, or B * T: the values each feature's statistics are taken over
    n = rows - 1 if spec.lecture else rows  # with dx_hat = gain * d: mean(dx_hat) = gain * dshift / rows
    return torch.addcmul(d - dshift / rows, x_hat, dgain, value=-1 / n) * (params[spec.gain] * inv)


def _layer_norm_forward(spec: LayerNormSpec, params: list[torch.Tensor], z: torch.Tensor, run: _Pass) -> tuple:
    """LayerNorm on each row of z (rows, C): its own mean and biased variance, no buffers."""
    centred = z - z.mean(1, keepdim=True)
    inv = torch.rsqrt((centred * centred).mean(1, keepdim=True) + spec.eps)  # (rows, 1)
    x_hat = centred * inv
    return torch.addcmul(params[spec.shift], params[spec.gain], x_hat), (x_hat, inv)


def _layer_norm_backward(
    spec: LayerNormSpec, params: list[torch.Tensor], d: torch.Tensor, kept, grads: list
) -> torch.Tensor:
    x_hat, inv = kept
    grads[spec.gain] = (d * x_hat).sum(0)
    grads[spec.shift] = d.sum(0)
    dx_hat = d * params[spec.gain]
    return (dx_hat - dx_hat.mean(1, keepdim=True) - x_hat * (dx_hat * x_hat).mean(1, keepdim=True)) * inv


def _tanh_forward(spec: TanhSpec, params: list[torch.Tensor], x: torch.Tensor, run: _Pass) -> tuple:
    y = torch.tanh(x)
    return y, y


def _tanh_backward(spec: TanhSpec, params: list[torch.Tensor], d: torch.Tensor, y, grads: list) -> torch.Tensor:
    return torch.ops.aten.tanh_backward(d, y)  # d * (1 - tanh^2)


def _dropout_forward(spec: DropoutSpec, params: list[torch.Tensor], x: torch.Tensor, run: _Pass) -> tuple:
    scale = dropout_scale(next(run.masks), spec.p, x.dtype).reshape(x.shape)  # (B, T * C) -> (B * T, C)
    return x * scale, scale


def _dropout_backward(
    spec: DropoutSpec, params: list[torch.Tensor], d: torch.Tensor, scale, grads: list
) -> torch.Tensor:
    return d * scale  # the scale the forward pass multiplied by


KINDS: dict[type, tuple[Callable[..., tuple], Callable[..., torch.Tensor]]] = {
    MergeSpec: (_merge_forward, _merge_backward),
    LinearSpec: (_linear_forward, _linear_backward),
    NormSpec: (_norm_forward, _norm_backward),
    LayerNormSpec: (_layer_norm_forward, _layer_norm_backward),
    TanhSpec: (_tanh_forward, _tanh_backward),
    DropoutSpec: (_dropout_forward, _dropout_backward),
}


def vocab_range(plan: Plan, vocab: int, ctx_shape: torch.Size | tuple[int, int]) -> tuple[int, int | None]:
    """The vocabulary sizes (lowest, highest or None) for which the step takes the same path as for
    `vocab`: one compiled step serves them all (`factors_first_layer` is the only choice it makes)."""
    rows = _first_rows(plan, ctx_shape)
    if rows is None:
        return 2, None
    return (2, rows - 1) if vocab < rows else (rows, None)


def factors_first_layer(plan: Plan, vocab: int, ctx_shape: torch.Size | tuple[int, int]) -> bool:
    """Whether the first Linear runs on the embedding table instead of the merged rows.

    A Linear on a merge of n embeddings is a sum of n products, one per part: each character's
    product with each block of the weight can be taken once, on the table (vocab rows), and
    gathered, instead of on every merged row. That costs vocab / rows of the direct way, so it
    is taken when the first merge is partial (the wavenet's pairs: rows = B * T / n) and the
    vocabulary is smaller than the rows (docs/performance.md has what it saves).
    """
    rows = _first_rows(plan, ctx_shape)
    return rows is not None and vocab < rows


def _first_rows(plan: Plan, ctx_shape: torch.Size | tuple[int, int]) -> int | None:
    """The rows of a partial first merge followed by a Linear (B * T / n), else None."""
    if len(plan.layers) < 2 or not isinstance(plan.layers[1], LinearSpec):
        return None
    merge = plan.layers[0]
    batch, block = ctx_shape
    if not isinstance(merge, MergeSpec) or merge.n is None or merge.n >= block:
        return None
    return batch * block // merge.n


def _factored_forward(
    table: torch.Tensor, weight: torch.Tensor, ctx: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first Linear's output on merged embeddings, (rows, out), from the table (V, E) and the
    weight (n * E, out); and the ids (rows, n) of the merged rows, offset so that part k of a row
    picks from block k (ids + k * V) of the (n * V, out) products."""
    vocab, width = table.shape
    ids = ctx.reshape(-1, n) + vocab * torch.arange(n, device=ctx.device)  # (rows, n)
    products = (table @ weight.reshape(n, width, -1)).reshape(n * vocab, -1)  # (n * V, out)
    return ids, products[ids].sum(1)


def _factored_backward(
    table: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor, d: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of the weight (n * E, out) and the table (V, E) from d (rows, out), the gradient
    at the factored first Linear's output: each part's gradient summed per character first."""
    vocab, width = table.shape
    n = ids.shape[1]
    per_char = d.new_zeros(n * vocab, d.shape[1]).index_add_(0, ids.reshape(-1), d.repeat_interleave(n, 0))
    per_char = per_char.reshape(n, vocab, -1)  # (n, V, out): part k's gradient summed over character v
    blocks = weight.reshape(n, width, -1)  # (n, E, out)
    dweight = (table.t() @ per_char).reshape(n * width, -1)  # (n, E, out) -> (n * E, out)
    dtable = (per_char @ blocks.transpose(1, 2)).sum(0)  # (V, E)
    return dweight, dtable


def _merge(x: torch.Tensor, batch: int, n: int | None) -> torch.Tensor:
    """(B*T, C) -> (B*T/n, n*C), as FlattenConsecutive(n) on (B, T, C); n None: (B, T*C), as Flatten.

    Reshaping through (B, T/n, n*C) refuses a T that n does not divide, as the model does.
    """
    if n is None:
        return x.reshape(batch, -1)
    channels = x.shape[1] * n
    return x.reshape(batch, -1, channels).reshape(-1, channels)


def update_(
    plan: Plan,
    params: list[torch.Tensor],
    buffers: list[list[torch.Tensor]],
    grads: list[torch.Tensor],
    stats: Stats,
    lr: float | torch.Tensor,
    weight_decay: float = 0.0,
) -> None:
    """SGD `p += -lr * grad` and the running-statistics update, in place.

    With `weight_decay`, the parameters `plan.decayed` also take the decoupled decay
    `-lr * weight_decay * p` (SGDW, as `bnnames.training.loop`); at 0 the step is unchanged.
    """
    if weight_decay:  # the step's direction: grad + weight_decay * p on the decayed parameters
        # (not torch.add(g, p, alpha=...): inductor in torch 2.13.0 compiles that one wrongly)
        grads = [g + weight_decay * p if i in plan.decayed else g for i, (p, g) in enumerate(zip(params, grads))]
    torch._foreach_add_(params, torch._foreach_mul(grads, -lr))
    for spec, (mean, spread) in zip(plan.norms, stats):
        running_mean, running_spread, tracked = buffers[spec.buffers]
        running_mean.mul_(1 - spec.momentum).add_(mean, alpha=spec.momentum)
        running_spread.mul_(1 - spec.momentum).add_(spread, alpha=spec.momentum)
        tracked.add_(1)
