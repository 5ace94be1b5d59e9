"""Loss of a model over a whole split, in eval mode (BatchNorm uses population statistics)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from bnnames.data import Dataset
from bnnames.errors import CheckpointError
from bnnames.examples import Source, as_examples
from bnnames.inference import count_rows, distinct_contexts, folded
from bnnames.model import NamesModel
from bnnames.storage.checkpoint import Checkpoint, model_in_use

CHUNK = 1 << 15  # contexts per forward pass: bounds memory (~70 MB for the wavenet), and the larger
# a pass, the more of its positions share rows in the folded network (bnnames.inference.Folded)


@dataclass(frozen=True)
class SplitLoss:
    split: str
    loss: float  # mean cross-entropy, nats per character (the end token counts as one)
    examples: int
    stats: str  # "running", "calibrated", or "none" for a model without BatchNorm

    @property
    def bits_per_char(self) -> float:
        return self.loss / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)


@torch.inference_mode()
def split_loss(model: NamesModel, x: torch.Tensor | Source, y: torch.Tensor | None = None, chunk: int = CHUNK) -> float:
    """Mean cross-entropy over the examples (x (N, T), y (N,), or `x` a stream) in eval mode,
    summed in float64: each distinct (context, target) row once, weighted by its count."""
    examples = as_examples(x, y)
    return counted_loss(model, *count_rows(examples, targets=True), chunk)


@torch.inference_mode()
def counted_loss(model: NamesModel, pairs: torch.Tensor, counts: torch.Tensor, chunk: int = CHUNK) -> float:
    """Mean cross-entropy of a split given as its distinct (context, target) rows `pairs` (P, T + 1)
    and how often each occurs, `counts` (P,) (`count_rows`): a run that measures the same split
    again and again counts it once."""
    log_probs = target_log_probs(model, pairs[:, :-1], pairs[:, -1], chunk)  # (P,)
    return -(log_probs * counts).sum().item() / counts.sum().item()


@torch.inference_mode()
def target_log_probs(model: NamesModel, x: torch.Tensor, y: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """log p(y_i | x_i) of each example (x (N, T), y (N,)) as (N,) float64, in eval mode.

    Each distinct context is run once, through the network with BatchNorm folded into the
    Linear layers before it: the same loss as the layer-by-layer model up to float32 rounding.
    """
    model.eval()
    net = folded(model)
    contexts, inverse, _ = distinct_contexts(x)  # (U, T), (N,)
    log_probs = torch.cat([F.log_softmax(net(part).float(), dim=1) for part in contexts.split(chunk)])  # (U, vocab)
    return log_probs[inverse, y].double()


@dataclass(frozen=True)
class EvalReport:
    losses: list[SplitLoss]
    note: str | None  # set when --data is not the training file


def checkpoint_losses(
    ckpt: Checkpoint,
    dataset: Dataset,
    splits: Sequence[str],
    stats: str | None,
    target: torch.device,
    weights: str | None = None,
    path: Path | None = None,
) -> list[SplitLoss]:
    """The loss of a loaded checkpoint on each split: what `eval` prints, for `compare` too."""
    model, kind = model_in_use(ckpt, weights, stats)
    return model_losses(model.to(target), kind, dataset, splits, target, path)


def model_losses(
    model: NamesModel, kind: str, dataset: Dataset, splits: Sequence[str], target: torch.device, path: Path | None
) -> list[SplitLoss]:
    """The loss of `model` (on `target`, its statistics `kind` chosen) on each split of `dataset`."""
    losses = []
    for name in splits:
        examples = dataset.stream(name).to(target)
        loss = split_loss(model, examples)
        if not math.isfinite(loss):
            raise CheckpointError(f"the {name} loss of {path} is {loss}: its weights are corrupt or diverged")
        losses.append(SplitLoss(name, loss, len(examples), kind))
    return losses
