"""What the hand-derived step knows about a model: its layers, in order, as a `Plan`.

The fast step covers Embedding -> any sequence of Flatten, FlattenConsecutive (the wavenet's
merge of neighbours), Linear (with or without bias), BatchNorm (paper or lecture arithmetic,
over the batch, or over batch and time), LayerNorm, tanh and dropout; the last layer's output
is the logits (a Linear, or a BatchNorm after it as in the lecture's deep MLP). Each layer kind
has one entry in `PLANNERS` (what the step needs to know of it) and one forward/backward pair in
`step.KINDS`: adding a kind adds one of each.

The step keeps every activation as a 2-D (rows, C) matrix, rows = B * T: a (B, T, C) tensor
read row by row. Merging neighbours is then only a reshape, and BatchNorm over batch and time
is BatchNorm over the rows.

`plan_of(model)` returns None for anything else; the caller then uses the reference loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from bnnames.model import (
    BatchNorm,
    Dropout,
    Embedding,
    Flatten,
    FlattenConsecutive,
    Layer,
    LayerNorm,
    Linear,
    NamesModel,
    Tanh,
)


@dataclass(frozen=True)
class LinearSpec:
    weight: int  # index into the parameter list
    bias: int | None


@dataclass(frozen=True)
class NormSpec:
    gain: int  # index into the parameter list
    shift: int
    buffers: int  # index into the BatchNorm list: (running mean, running var|std, batches tracked)
    lecture: bool  # unbiased std and no eps (the notebook's) instead of the paper's biased var + eps
    eps: float
    momentum: float


@dataclass(frozen=True)
class LayerNormSpec:
    gain: int  # index into the parameter list
    shift: int
    eps: float


@dataclass(frozen=True)
class TanhSpec:
    pass


@dataclass(frozen=True)
class DropoutSpec:
    p: float
    width: int  # values per example it masks: positions x features (its (B, T, C) activations read as (B, T * C))


@dataclass(frozen=True)
class MergeSpec:
    """Concatenate each `n` consecutive positions: (B * T, C) -> (B * T / n, n * C); None: all T (Flatten)."""

    n: int | None


Spec = LinearSpec | NormSpec | LayerNormSpec | TanhSpec | DropoutSpec | MergeSpec


@dataclass(frozen=True)
class Plan:
    """The layers after the embedding; parameter 0 is always the embedding table."""

    layers: tuple[Spec, ...]
    decayed: tuple[int, ...] = ()  # indices of the parameters weight decay shrinks

    @property
    def dropouts(self) -> tuple[DropoutSpec, ...]:
        """The dropout layers, input side first: the order their masks are drawn in."""
        return tuple(spec for spec in self.layers if isinstance(spec, DropoutSpec))

    @property
    def norms(self) -> tuple[NormSpec, ...]:
        """The BatchNorm layers, in order: the ones whose running statistics a step updates."""
        return tuple(spec for spec in self.layers if isinstance(spec, NormSpec))


@dataclass
class _Walk:
    """Where `plan_of` is in the model: the next parameter's index (0 is the embedding table),
    the next BatchNorm's index, and the width of the last Linear's output."""

    param: int = 1
    norm: int = 0
    width: int = 0

    def take(self, count: int) -> int:
        """The index of the first of the next `count` parameters."""
        self.param += count
        return self.param - count


def _linear(layer: Linear, walk: _Walk, later: Sequence[Layer]) -> Spec:
    weight = walk.take(1)
    walk.width = layer.weight.shape[1]
    return LinearSpec(weight, walk.take(1) if layer.bias is not None else None)


def _batch_norm(layer: BatchNorm, walk: _Walk, later: Sequence[Layer]) -> Spec | None:
    if layer.style not in ("paper", "lecture"):
        return None
    gain, walk.norm = walk.take(2), walk.norm + 1
    return NormSpec(gain, gain + 1, walk.norm - 1, layer.style == "lecture", layer.eps, layer.momentum)


def _layer_norm(layer: LayerNorm, walk: _Walk, later: Sequence[Layer]) -> Spec:
    gain = walk.take(2)
    return LayerNormSpec(gain, gain + 1, layer.eps)


def _dropout(layer: Dropout, walk: _Walk, later: Sequence[Layer]) -> Spec | None:
    if not walk.width:
        return None  # before any Linear: not a place the models put one
    positions = math.prod(n.n for n in later if type(n) is FlattenConsecutive)  # the merges still to come
    return DropoutSpec(layer.p, positions * walk.width)


# what the step needs to know of each layer kind it covers (its forward and backward: step.KINDS)
PLANNERS: dict[type, Callable[..., Spec | None]] = {
    Flatten: lambda layer, walk, later: MergeSpec(None),
    FlattenConsecutive: lambda layer, walk, later: MergeSpec(layer.n),
    Linear: _linear,
    BatchNorm: _batch_norm,
    LayerNorm: _layer_norm,
    Tanh: lambda layer, walk, later: TanhSpec(),
    Dropout: _dropout,
}


def plan_of(model: NamesModel) -> Plan | None:
    """The step's view of `model`, or None when the fast step does not cover it."""
    layers = list(getattr(model, "layers", []))
    if len(layers) < 3 or type(layers[0]) is not Embedding or type(layers[1]) not in (Flatten, FlattenConsecutive):
        return None
    specs: list[Spec] = []
    walk = _Walk()
    for at, layer in enumerate(layers[1:], start=1):
        planner = PLANNERS.get(type(layer))
        spec = planner(layer, walk, layers[at + 1 :]) if planner else None
        if spec is None:
            return None
        specs.append(spec)
    params = list(model.parameters())
    if walk.param != len(params):
        return None  # parameters the plan does not know about
    decayed = {id(p) for p in model.decayed_parameters()}
    return Plan(tuple(specs), tuple(i for i, p in enumerate(params) if id(p) in decayed))


def supports(model: NamesModel) -> bool:
    """True when the hand-derived step can train `model` (else: the reference loop)."""
    return plan_of(model) is not None


def state_of(model: NamesModel) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """The tensors the step updates in place: parameters in order, and each BatchNorm's buffers."""
    params = [p.detach() for p in model.parameters()]
    buffers = [
        [bn.running_mean, getattr(bn, f"running_{bn.spread}"), bn.num_batches_tracked] for bn in model.batch_norms()
    ]
    return params, buffers
