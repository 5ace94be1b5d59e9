"""Draw new names from a trained model, many at once, in eval mode."""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from bnnames.config import SampleConfig
from bnnames.data import BOUNDARY, Vocab
from bnnames.errors import CheckpointError, ConfigError
from bnnames.inference import folded
from bnnames.model import NamesModel
from bnnames.runtime import THREADS, num_threads, resolve_device
from bnnames.storage.checkpoint import data_note, dataset_for, load_checkpoint, model_in_use
from bnnames.storage.header import short

TABLE_MAX_CONTEXTS = 1 << 16  # up to this many possible contexts (vocab ** block_size), keep a table

NON_FINITE = "this model gives non-finite probabilities: its weights are corrupt or diverged (see `bnnames eval`)"


def sample_names(
    model: NamesModel,
    vocab: Vocab,
    block_size: int,
    config: SampleConfig,
    generator: torch.Generator,
    exclude: frozenset[str] = frozenset(),
    device: torch.device | None = None,  # None: where the model's parameters are
) -> list[str]:
    """`config.count` names, never empty and never in `exclude`, in the order they were drawn."""
    batches = draw_batches(model, vocab, block_size, config, generator, exclude, device)
    return [name for batch in batches for name in batch]


def draw_batches(
    model: NamesModel,
    vocab: Vocab,
    block_size: int,
    config: SampleConfig,
    generator: torch.Generator,
    exclude: frozenset[str] = frozenset(),
    device: torch.device | None = None,  # None: where the model's parameters are
) -> Iterator[list[str]]:
    """The names of `sample_names`, batch by batch as they are drawn: a caller can write each
    batch out before the next is drawn, so memory holds one batch whatever the count.

    Rows advance together one character per step; a row is done when it draws the boundary
    token or reaches max_length. Empty or excluded names are drawn again in the next batch.
    """
    model.eval()
    device = device or next(model.parameters()).device
    prefix_ids = vocab.encode(config.prefix)
    context = ([BOUNDARY] * block_size + prefix_ids)[-block_size:]
    with torch.inference_mode(), num_threads(THREADS):  # the fold, as the draws: one thread count
        predictor = _predictor(model, vocab.size, block_size, config, device)
    rows = min(config.batch, 2 * config.count)
    left = config.count
    for _ in range(100 + 10 * math.ceil(config.count / rows)):  # gives up on a hopeless --novel
        with torch.inference_mode(), num_threads(THREADS):  # each batch alike, however it is consumed
            ids = _sample_batch(predictor, context, rows, config.max_length - len(prefix_ids), generator)
        batch: list[str] = []
        for row in ids.tolist():
            body = row[: row.index(BOUNDARY)] if BOUNDARY in row else row
            name = config.prefix + vocab.decode(body)
            if name and name not in exclude:
                batch.append(name)
                if len(batch) == left:
                    yield batch
                    return
        left -= len(batch)
        if batch:
            yield batch
    raise ConfigError(
        f"drew only {config.count - left} of {config.count} names (the rest were empty or already known): "
        "lower -n, raise --temperature or drop --novel"
    )


def _sample_batch(
    predictor: Predictor, context: list[int], rows: int, steps: int, generator: torch.Generator
) -> torch.Tensor:
    """Sampled ids after the prefix: (rows, steps), BOUNDARY once a row is done.

    Each row draws by inverting its cumulative distribution at a uniform number: one random
    number per row and step (torch.multinomial does much more work per draw: docs/performance.md).
    """
    state = predictor.start(context, rows)
    out = torch.full((rows, steps), BOUNDARY, dtype=torch.long)
    done = torch.zeros(rows, dtype=torch.bool)
    for t in range(steps):
        cdf = predictor.cdf(state)  # (rows, vocab) float64, cumulative
        u = torch.rand(rows, 1, generator=generator, dtype=torch.float64) * cdf[:, -1:]
        nxt = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_max(cdf.shape[1] - 1)  # (rows,)
        nxt.masked_fill_(done, BOUNDARY)
        out[:, t] = nxt
        done |= nxt == BOUNDARY
        if bool(done.all()):
            break
        state = predictor.advance(state, nxt)
    return out


class Predictor:
    """Next-character distributions of the folded model, one forward pass per step.

    State: the contexts (rows, block_size).
    """

    def __init__(self, model: NamesModel, config: SampleConfig, device: torch.device) -> None:
        self.net, self.config, self.device = folded(model), config, device

    def start(self, context: list[int], rows: int) -> torch.Tensor:
        return torch.tensor(context).repeat(rows, 1)

    def cdf(self, state: torch.Tensor) -> torch.Tensor:
        return _cdf(self.net(state.to(self.device)), self.config).cpu()

    def advance(self, state: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        return torch.cat([state[:, 1:], nxt[:, None]], dim=1)


class TablePredictor(Predictor):
    """The same distributions, each computed once, when a row first reaches its context.

    With 27 characters and a context of 3 there are only 27**3 = 19,683 possible contexts, and
    10,000 names visit a few thousand of them: a table beats a forward pass per row and step.
    State: each row's context as one number, its ids read as digits in base vocab (oldest first).
    """

    def __init__(
        self, model: NamesModel, vocab_size: int, block_size: int, config: SampleConfig, device: torch.device
    ) -> None:
        super().__init__(model, config, device)
        self.vocab_size, self.contexts = vocab_size, vocab_size**block_size
        self.powers = vocab_size ** torch.arange(block_size - 1, -1, -1)  # (T,)
        self.table = torch.empty(self.contexts, vocab_size, dtype=torch.float64)  # (contexts, vocab) cdfs
        self.known = torch.zeros(self.contexts, dtype=torch.bool)

    def start(self, context: list[int], rows: int) -> torch.Tensor:
        return torch.full((rows,), int((torch.tensor(context) * self.powers).sum()), dtype=torch.long)

    def cdf(self, state: torch.Tensor) -> torch.Tensor:
        new = torch.unique(state[~self.known[state]])  # contexts no row has reached before
        if new.numel():
            digits = new[:, None] // self.powers % self.vocab_size  # (new, T) context ids
            self.table[new] = super().cdf(digits)
            self.known[new] = True
        return self.table[state]

    def advance(self, state: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        return (state * self.vocab_size + nxt) % self.contexts  # drop the oldest digit, append nxt


def _predictor(
    model: NamesModel, vocab_size: int, block_size: int, config: SampleConfig, device: torch.device
) -> Predictor:
    if vocab_size**block_size <= TABLE_MAX_CONTEXTS:
        return TablePredictor(model, vocab_size, block_size, config, device)
    return Predictor(model, config, device)


def _cdf(logits: torch.Tensor, config: SampleConfig) -> torch.Tensor:
    """Cumulative next-character probabilities (rows, vocab), float64, after temperature and top-k."""
    logits = logits.double() / config.temperature
    if config.top_k is not None and config.top_k < logits.shape[1]:
        kth = torch.topk(logits, config.top_k, dim=1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    cdf = torch.softmax(logits, dim=1).cumsum(dim=1)
    if not bool(torch.isfinite(cdf[:, -1]).all()):
        raise CheckpointError(NON_FINITE)
    return cdf


@dataclass(frozen=True)
class SampleReport:
    batches: Iterator[list[str]]  # drawn as they are read: write each out before the next is drawn
    seed: int
    note: str | None


@num_threads(THREADS)
def sample_checkpoint(
    path: Path, config: SampleConfig, novel: bool, data: Path | None, device: str, weights: str | None = None
) -> SampleReport:
    """Names from a checkpoint's best (or `weights`) weights, calibrated statistics when it has them."""
    ckpt = load_checkpoint(path)
    unknown = "".join(sorted(set(config.prefix) - set(ckpt.vocab.chars)))
    if unknown:
        raise ConfigError(
            f"--prefix {config.prefix!r} has characters not in the vocabulary of this model: {unknown!r} "
            f"(it knows {short(''.join(ckpt.vocab.chars), 80)})"
        )
    target = resolve_device(device)
    model = model_in_use(ckpt, weights)[0].to(target)
    exclude: frozenset[str] = frozenset()
    note = None
    if novel:
        dataset = dataset_for(ckpt, data)
        exclude, note = frozenset(dataset.names), data_note(ckpt, dataset)
    seed = config.seed if config.seed is not None else secrets.randbits(62)
    generator = torch.Generator().manual_seed(seed)
    batches = draw_batches(model, ckpt.vocab, ckpt.model_config.block_size, config, generator, exclude, target)
    return SampleReport(batches, seed, note)
