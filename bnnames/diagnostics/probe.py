"""The lecture's health checks of a network, measured on one mini-batch ("a probe").

makemore part 3 looks at four things to tell a healthy deep network from a sick one:
- each tanh layer's output: mean, std and saturation (the share of |t| > 0.97, where tanh is flat
  and passes almost no gradient), its histogram, and its dead units (|t| > 0.99 on every example of
  the batch: the lecture's all-white column, a unit that never learns);
- the gradient of the loss with respect to each tanh output: mean, std, histogram;
- each weight matrix's gradient, and its grad:data ratio std(grad) / std(weight);
- the update:data ratio log10(std(lr * grad) / std(weight)), about -3 when learning is healthy.

A probe runs one forward and backward pass in training mode on a batch it is given and leaves the
model exactly as it found it: no parameter, gradient or BatchNorm buffer changes, so recording
diagnostics never changes the training run itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bnnames.examples import Source
from bnnames.model import NamesModel

SATURATION = 0.97  # |tanh| above this counts as saturated (the lecture's threshold)
DEAD = 0.99  # a unit with |tanh| above this on every example of the probe batch is dead (the lecture's)
BINS = 40  # histogram bins: a probe batch gives 32 x 100 values per layer, enough for 40


@dataclass(frozen=True)
class Histogram:
    counts: list[float]  # BINS counts
    low: float  # left edge of the first bin
    high: float  # right edge of the last bin


@dataclass(frozen=True)
class LayerStats:
    """One tanh layer's output t and dloss/dt on the probe batch."""

    name: str  # e.g. "layers.3 (Tanh)"
    mean: float
    std: float
    saturation: float  # fraction of |t| > SATURATION
    grad_mean: float
    grad_std: float
    hist: Histogram  # of t, over [-1, 1]
    grad_hist: Histogram  # of dloss/dt, over [-max|g|, max|g|]
    dead: int | None = None  # units with |t| > DEAD on the whole batch (None: recorded before it was kept)
    units: int | None = None  # the layer's width


@dataclass(frozen=True)
class WeightStats:
    """One weight matrix (every 2-D parameter, the embedding table included)."""

    name: str  # its state_dict name, e.g. "layers.2.weight"
    shape: tuple[int, ...]
    grad_mean: float
    grad_std: float
    grad_to_data: float | None  # std(grad) / std(weight); None for an all-constant weight
    update_to_data: float | None  # log10(std(lr * grad) / std(weight)); None when lr * grad is 0
    grad_hist: Histogram


@dataclass(frozen=True)
class Probe:
    step: int  # optimisation steps done when measured
    lr: float  # the learning rate of the next step (scales the update ratio)
    loss: float
    layers: list[LayerStats]
    weights: list[WeightStats]


PROBE_SEED = 1_000_003  # probe batches come from their own generators, seeded PROBE_SEED + step


def probe_at(model: NamesModel, examples: Source, step: int, batch_size: int, lr: float) -> Probe:
    """Probe the batch of the training `examples` for `step`: drawn from a generator of its own,
    seeded by the step, so the training run's generator (and with it the run) is the same with or
    without diagnostics, and a checkpoint probed later sees the batch a recording would have seen."""
    generator = torch.Generator().manual_seed(PROBE_SEED + step)
    ix = torch.randint(0, len(examples), (batch_size,), generator=generator)
    return probe(model, *examples.gather(ix.to(examples.device)), step, lr)


def probe(model: NamesModel, x: torch.Tensor, y: torch.Tensor, step: int, lr: float) -> Probe:
    """Measure `model` on the batch (x (B, T), y (B,)) in training mode, changing nothing in it."""
    layers = enumerate(model.layers)
    tanhs = [(f"layers.{i} ({type(layer).__name__})", layer) for i, layer in layers if layer.nonlinearity]
    outputs: dict[str, torch.Tensor] = {}
    hooks = [layer.register_forward_hook(_keep(outputs, name)) for name, layer in tanhs]
    weights = [(name, p) for name, p in model.named_parameters() if p.dim() == 2]
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    was_training = model.training
    try:
        model.train()  # BatchNorm on mini-batch statistics, as in a training step
        loss = F.cross_entropy(model(x), y)
        acts = [outputs[name] for name, _ in tanhs]
        grads = torch.autograd.grad(loss, acts + [p for _, p in weights])  # p.grad is left alone
    finally:
        for hook in hooks:
            hook.remove()
        with torch.no_grad():  # the probe's batch must not move the running estimates
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        model.train(was_training)
    layers = [_layer_stats(name, t.detach(), g) for (name, _), t, g in zip(tanhs, acts, grads)]
    weight_stats = [_weight_stats(name, p.detach(), g, lr) for (name, p), g in zip(weights, grads[len(acts) :])]
    return Probe(step, lr, loss.item(), layers, weight_stats)


def _keep(outputs: dict[str, torch.Tensor], name: str) -> Callable[..., None]:
    def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        outputs[name] = output

    return hook


def _layer_stats(name: str, t: torch.Tensor, g: torch.Tensor) -> LayerStats:
    t, g = t.double(), g.double()
    return LayerStats(
        name=name,
        mean=t.mean().item(),
        std=t.std().item(),
        saturation=(t.abs() > SATURATION).double().mean().item(),
        grad_mean=g.mean().item(),
        grad_std=g.std().item(),
        hist=histogram(t, -1.0, 1.0),
        grad_hist=histogram(g),
        dead=int((t.abs() > DEAD).reshape(-1, t.shape[-1]).all(0).sum()),  # (B or B x T', units) -> units
        units=t.shape[-1],
    )


def _weight_stats(name: str, w: torch.Tensor, g: torch.Tensor, lr: float) -> WeightStats:
    w, g = w.double(), g.double()
    data_std = w.std().item()
    grad_std = g.std().item()
    ratio = grad_std / data_std if data_std > 0 else None
    update = math.log10(lr * ratio) if ratio is not None and lr * ratio > 0 else None
    return WeightStats(name, tuple(w.shape), g.mean().item(), grad_std, ratio, update, histogram(g))


def histogram(values: torch.Tensor, low: float | None = None, high: float | None = None) -> Histogram:
    """Counts over BINS equal bins; without a range, symmetric around 0 up to the largest |value|."""
    if low is None or high is None:
        top = values.abs().max().item() or 1.0
        low, high = -top, top
    counts = torch.histc(values.float().flatten(), bins=BINS, min=low, max=high)
    return Histogram(counts.tolist(), low, high)
