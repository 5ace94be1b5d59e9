"""Draw new names from a trained model, many at once, in eval mode."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from bnnames.checkpoint import data_note, dataset_for, load_checkpoint
from bnnames.config import SampleConfig
from bnnames.data import BOUNDARY, Vocab
from bnnames.device import resolve_device
from bnnames.errors import CheckpointError, ConfigError
from bnnames.header import short
from bnnames.model import NamesModel

NON_FINITE = "this model gives non-finite probabilities: its weights are corrupt or diverged (see `bnnames eval`)"


@torch.inference_mode()
def sample_names(
    model: NamesModel,
    vocab: Vocab,
    block_size: int,
    config: SampleConfig,
    generator: torch.Generator,
    exclude: frozenset[str] = frozenset(),
    device: torch.device = torch.device("cpu"),
) -> list[str]:
    """`config.count` names, never empty and never in `exclude`, in the order they were drawn.

    Rows advance together one character per step; a row is done when it draws the boundary
    token or reaches max_length. Empty or excluded names are drawn again in the next batch.
    """
    model.eval()
    prefix_ids = vocab.encode(config.prefix)
    rows = min(config.batch, 2 * config.count)
    names: list[str] = []
    for _ in range(100 + 10 * math.ceil(config.count / rows)):  # gives up on a hopeless --novel
        ids = _sample_batch(model, prefix_ids, block_size, rows, config, generator, device)  # (rows, L)
        for row in ids.tolist():
            body = row[: row.index(BOUNDARY)] if BOUNDARY in row else row
            name = config.prefix + vocab.decode(body)
            if name and name not in exclude:
                names.append(name)
                if len(names) == config.count:
                    return names
    raise ConfigError(
        f"drew only {len(names)} of {config.count} names (the rest were empty or already known): "
        "lower -n, raise --temperature or drop --novel"
    )


def _sample_batch(
    model: NamesModel,
    prefix_ids: list[int],
    block_size: int,
    rows: int,
    config: SampleConfig,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """Sampled ids after the prefix: (rows, max_length - len(prefix)), BOUNDARY once done."""
    start = [BOUNDARY] * block_size + prefix_ids
    context = torch.tensor(start[-block_size:], device=device).repeat(rows, 1)  # (rows, T)
    steps = max(config.max_length - len(prefix_ids), 0)
    out = torch.full((rows, steps), BOUNDARY, dtype=torch.long, device=device)
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    for t in range(steps):
        logits = model(context) / config.temperature  # (rows, vocab)
        if config.top_k is not None and config.top_k < logits.shape[1]:
            kth = torch.topk(logits, config.top_k, dim=1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = F.softmax(logits, dim=1)
        if not bool(torch.isfinite(probs).all()):  # multinomial would fail with a bare RuntimeError
            raise CheckpointError(NON_FINITE)
        nxt = torch.multinomial(probs.cpu(), 1, generator=generator).to(device).squeeze(1)  # (rows,)
        nxt = nxt.masked_fill(done, BOUNDARY)
        out[:, t] = nxt
        done |= nxt == BOUNDARY
        if bool(done.all()):
            break
        context = torch.cat([context[:, 1:], nxt[:, None]], dim=1)
    return out


@dataclass(frozen=True)
class SampleReport:
    names: list[str]
    seed: int
    note: str | None


def sample_checkpoint(path: Path, config: SampleConfig, novel: bool, data: Path | None, device: str) -> SampleReport:
    """Names from a checkpoint, with calibrated BatchNorm statistics when it has them."""
    ckpt = load_checkpoint(path)
    unknown = "".join(sorted(set(config.prefix) - set(ckpt.vocab.chars)))
    if unknown:
        raise ConfigError(
            f"--prefix {config.prefix!r} has characters not in the vocabulary of this model: {unknown!r} "
            f"(it knows {short(''.join(ckpt.vocab.chars), 80)})"
        )
    target = resolve_device(device)
    model = ckpt.model.to(target)
    model.use_stats("calibrated" if model.has_calibration() else "running")
    exclude: frozenset[str] = frozenset()
    note = None
    if novel:
        dataset = dataset_for(ckpt, data)
        exclude, note = frozenset(dataset.names), data_note(ckpt, dataset)
    seed = config.seed if config.seed is not None else secrets.randbits(62)
    generator = torch.Generator().manual_seed(seed)
    names = sample_names(model, ckpt.vocab, ckpt.model_config.block_size, config, generator, exclude, target)
    return SampleReport(names, seed, note)
