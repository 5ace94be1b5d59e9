"""What the hand-derived step knows about a model: its layers, in order, as a `Plan`.

The fast step covers Embedding -> Flatten -> any sequence of Linear (with or without bias),
BatchNorm over 2-D activations (paper or lecture arithmetic), tanh and dropout; the last layer's output
is the logits (a Linear, or a BatchNorm after it as in the lecture's deep MLP).
`plan_of(model)` returns None for anything else; the caller then uses the reference loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bnnames.model import BatchNorm, Dropout, Embedding, Flatten, Linear, NamesModel, Tanh


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
    width: int  # features of the (B, width) activations it masks


Spec = LinearSpec | NormSpec | TanhSpec | DropoutSpec


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
    if len(layers) < 3 or type(layers[0]) is not Embedding or type(layers[1]) is not Flatten:
        return None
    specs: list[Spec] = []
    index, norms, width = 1, 0, 0  # parameter 0 is the embedding table
    for layer in layers[2:]:
        if type(layer) is Linear:
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
            specs.append(DropoutSpec(layer.p, width))
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
