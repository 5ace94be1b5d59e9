"""What the hand-derived step knows about a model: its layers, in order, as a `Plan`.

The fast step covers Embedding -> any sequence of Flatten, FlattenConsecutive (the wavenet's
merge of neighbours), Linear (with or without bias), BatchNorm (paper or lecture arithmetic,
over the batch, or over batch and time), tanh and dropout; the last layer's output is the
logits (a Linear, or a BatchNorm after it as in the lecture's deep MLP).

The step keeps every activation as a 2-D (rows, C) matrix, rows = B * T: a (B, T, C) tensor
read row by row. Merging neighbours is then only a reshape, and BatchNorm over batch and time
is BatchNorm over the rows.

`plan_of(model)` returns None for anything else; the caller then uses the reference loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bnnames.model import BatchNorm, Dropout, Embedding, Flatten, FlattenConsecutive, Linear, NamesModel, Tanh


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


Spec = LinearSpec | NormSpec | TanhSpec | DropoutSpec | MergeSpec


@dataclass(frozen=True)
class Plan:
    """The layers after the embedding; parameter 0 is always the embedding table."""

    layers: tuple[Spec, ...]
    decayed: tuple[int, ...] = ()  # indices of the parameters weight decay shrinks

    @property
    def dropouts(self) -> tuple[DropoutSpec, ...]:
        """The dropout layers, input side first: the order their masks are drawn in."""
        return tuple(spec for spec in self.layers if isinstance(spec, DropoutSpec))


def plan_of(model: NamesModel) -> Plan | None:
    """The step's view of `model`, or None when the fast step does not cover it."""
    layers = list(getattr(model, "layers", []))
    if len(layers) < 3 or type(layers[0]) is not Embedding or type(layers[1]) not in (Flatten, FlattenConsecutive):
        return None
    specs: list[Spec] = []
    index, norms, width = 1, 0, 0  # parameter 0 is the embedding table; width: the last Linear's outputs
    for at, layer in enumerate(layers[1:], start=1):
        if type(layer) is Flatten:
            specs.append(MergeSpec(None))
        elif type(layer) is FlattenConsecutive:
            specs.append(MergeSpec(layer.n))
        elif type(layer) is Linear:
            has_bias = layer.bias is not None
            specs.append(LinearSpec(index, index + 1 if has_bias else None))
            index += 2 if has_bias else 1
            width = layer.weight.shape[1]
        elif type(layer) is BatchNorm and layer.style in ("paper", "lecture"):
            specs.append(NormSpec(index, index + 1, norms, layer.style == "lecture", layer.eps, layer.momentum))
            index, norms = index + 2, norms + 1
        elif type(layer) is Tanh:
            specs.append(TanhSpec())
        elif type(layer) is Dropout and width:
            positions = math.prod(later.n for later in layers[at + 1 :] if type(later) is FlattenConsecutive)
            specs.append(DropoutSpec(layer.p, positions * width))  # the merges still to come: its positions
        else:
            return None
    params = list(model.parameters())
    if index != len(params):
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
