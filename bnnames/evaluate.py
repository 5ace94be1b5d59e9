"""Loss of a model over a whole split, in eval mode (BatchNorm uses population statistics)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from bnnames.config import Split, SplitChoice, Stats, check_choice, choices
from bnnames.errors import CheckpointError
from bnnames.examples import Source, as_examples
from bnnames.inference import count_rows, distinct_contexts, folded
from bnnames.model import NamesModel
from bnnames.runtime import THREADS, num_threads, resolve_device
from bnnames.storage.checkpoint import data_note, dataset_for, load_checkpoint

CHUNK = 8192  # rows per forward pass: bounds memory, keeps the matrix products large


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
    summed in float64.

    Each distinct context is run once, through the network with BatchNorm folded into the
    Linear layers before it: the same loss as the layer-by-layer model up to float32 rounding.
    """
    examples = as_examples(x, y)
    model.eval()
    net = folded(model)
    pairs, counts = count_rows(examples, targets=True)  # (P, T + 1) distinct (context, target), (P,)
    contexts, inverse, _ = distinct_contexts(pairs[:, :-1])  # (U, T), (P,)
    log_probs = torch.cat([F.log_softmax(net(part).float(), dim=1) for part in contexts.split(chunk)])  # (U, vocab)
    return -(log_probs[inverse, pairs[:, -1]].double() * counts).sum().item() / len(examples)


@dataclass(frozen=True)
class EvalReport:
    losses: list[SplitLoss]
    note: str | None  # set when --data is not the training file


@num_threads(THREADS)
def evaluate_checkpoint(path: Path, split: str, stats: str | None, data: Path | None, device: str) -> EvalReport:
    """Loss on one split or on all three; `stats` None means calibrated when present."""
    check_choice("split", split, SplitChoice)
    if stats is not None:
        check_choice("stats", stats, Stats)
    ckpt = load_checkpoint(path)
    kind = ckpt.model.choose_stats(stats)
    dataset = dataset_for(ckpt, data)
    target = resolve_device(device)
    model = ckpt.model.to(target)
    losses = []
    for name in choices(Split) if split == "all" else (split,):
        examples = dataset.stream(name).to(target)
        loss = split_loss(model, examples)
        if not math.isfinite(loss):
            raise CheckpointError(f"the {name} loss of {path} is {loss}: its weights are corrupt or diverged")
        losses.append(SplitLoss(name, loss, len(examples), kind))
    return EvalReport(losses, data_note(ckpt, dataset))
