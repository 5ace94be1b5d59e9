"""The folded eval-mode network as plain arrays: what every export format writes out.

Each BatchNorm is folded into the Linear before it (`bnnames.inference.fold_layers`), dropout is
gone, and what is left is a short list of steps over float32 arrays, one kind per layer kind:
gather (the embedding), merge (concatenate neighbouring positions: a reshape), affine (x @ W + b),
tanh and layer norm. A layer kind without an entry in `STEPS` cannot be exported: the message
names it before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bnnames.data import Vocab
from bnnames.errors import ConfigError
from bnnames.inference import fold_layers
from bnnames.model import Embedding, Flatten, FlattenConsecutive, LayerNorm, Linear, NamesModel, Tanh


@dataclass(frozen=True)
class Step:
    """One step of the network. kind: "gather", "merge", "affine", "tanh" or "layer_norm".

    Shapes: gather weight (vocab, C); merge `size` neighbours, (N, P, C) -> (N, P / size, C * size);
    affine weight (C_in, C_out), bias (C_out,); layer_norm weight and bias (C,), `eps`.
    """

    kind: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # float32
    size: int = 0  # merge: how many neighbouring positions become one
    eps: float = 0.0  # layer_norm


@dataclass(frozen=True)
class Network:
    """Contexts (N, block_size) of ids -> logits (N, len(tokens)); tokens[0] is the boundary ("")."""

    tokens: tuple[str, ...]  # "" (the boundary token, start and end of a name), then the characters
    block_size: int
    steps: tuple[Step, ...]
    labels: tuple[str, ...] = ()  # a labelled model's labels (issue 21): none yet

    @property
    def parameters(self) -> int:
        return sum(a.size for step in self.steps for a in step.arrays.values())


def _array(t) -> np.ndarray:  # noqa: ANN001 (a torch tensor)
    return t.detach().cpu().float().numpy().copy()


def _linear(layer: Linear, positions: int) -> Step:
    bias = _array(layer.bias) if layer.bias is not None else np.zeros(layer.weight.shape[1], np.float32)
    return Step("affine", {"weight": _array(layer.weight), "bias": bias})


# the step each exportable layer kind becomes, given how many positions reach it
STEPS: dict[type, Callable[..., Step]] = {
    Embedding: lambda layer, positions: Step("gather", {"weight": _array(layer.weight)}),
    Flatten: lambda layer, positions: Step("merge", size=positions),
    FlattenConsecutive: lambda layer, positions: Step("merge", size=layer.n),
    Linear: _linear,
    Tanh: lambda layer, positions: Step("tanh"),
    LayerNorm: lambda layer, positions: Step(
        "layer_norm", {"weight": _array(layer.weight), "bias": _array(layer.bias)}, eps=layer.eps
    ),
}


def network_of(model: NamesModel, vocab: Vocab, block_size: int) -> Network:
    """`model` in eval mode, with its current statistics choice, as export steps."""
    model.eval()
    steps: list[Step] = []
    positions = block_size
    for layer in fold_layers(list(model.layers)):
        make = STEPS.get(type(layer))
        if make is None:
            raise ConfigError(f"cannot export this model: the exporters do not know its {type(layer).__name__} layer")
        step = make(layer, positions)
        if step.kind == "merge":
            if step.size < 1 or positions % step.size:
                raise ConfigError(f"cannot export this model: it merges {step.size} of {positions} positions")
            positions //= step.size
        steps.append(step)
    if not steps or steps[0].kind != "gather" or positions != 1:
        raise ConfigError("cannot export this model: it does not map a context to one row of logits")
    return Network(("", *vocab.chars), block_size, tuple(steps))
