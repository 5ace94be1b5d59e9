"""Next-character distributions of a folded eval network, for the samplers: per row and step
(`Predictor`), remembered per context (`TablePredictor`), or for every context at once
(`TablePredictor.probabilities`, the exact conditional sampler's input)."""

from __future__ import annotations

import torch

from bnnames.config import SampleConfig
from bnnames.errors import CheckpointError
from bnnames.inference import folded
from bnnames.model import NamesModel

TABLE_MAX_CONTEXTS = 1 << 16  # up to this many possible contexts (vocab ** block_size), keep a table

NON_FINITE = "this model gives non-finite probabilities: its weights are corrupt or diverged (see `bnnames eval`)"


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
        return torch.full((rows,), self.key(context), dtype=torch.long)

    def cdf(self, state: torch.Tensor) -> torch.Tensor:
        new = torch.unique(state[~self.known[state]])  # contexts no row has reached before
        if new.numel():
            digits = new[:, None] // self.powers % self.vocab_size  # (new, T) context ids
            self.table[new] = super().cdf(digits)
            self.known[new] = True
        return self.table[state]

    def advance(self, state: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        return (state * self.vocab_size + nxt) % self.contexts  # drop the oldest digit, append nxt

    def key(self, context: list[int]) -> int:
        return int((torch.tensor(context) * self.powers).sum())

    def probabilities(self) -> torch.Tensor:
        """The next-character probabilities of every context (contexts, vocab), float64, row = key."""
        digits = torch.arange(self.contexts)[:, None] // self.powers % self.vocab_size  # (contexts, T)
        return next_probs(self.net(digits.to(self.device)), self.config).cpu()


def make_predictor(
    model: NamesModel, vocab_size: int, block_size: int, config: SampleConfig, device: torch.device
) -> Predictor:
    """The table when every context fits it (vocab ** block_size <= TABLE_MAX_CONTEXTS), else per row."""
    if fits_table(vocab_size, block_size):
        return TablePredictor(model, vocab_size, block_size, config, device)
    return Predictor(model, config, device)


def fits_table(vocab_size: int, block_size: int) -> bool:
    return vocab_size**block_size <= TABLE_MAX_CONTEXTS


def next_probs(logits: torch.Tensor, config: SampleConfig) -> torch.Tensor:
    """Next-character probabilities (rows, vocab), float64: temperature, then top-k, then top-p
    (the smallest set of likeliest characters whose probability reaches p, renormalised)."""
    logits = logits.double() / config.temperature
    if config.top_k is not None and config.top_k < logits.shape[1]:
        kth = torch.topk(logits, config.top_k, dim=1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=1)
    if config.top_p is not None and config.top_p < 1:
        ranked, order = probs.sort(dim=1, descending=True, stable=True)
        before = ranked.cumsum(dim=1) - ranked  # the probability of the likelier characters
        keep = torch.zeros_like(probs, dtype=torch.bool).scatter_(1, order, before < config.top_p)
        probs = probs * keep
        probs = probs / probs.sum(dim=1, keepdim=True)
    if not bool(torch.isfinite(probs).all()):
        raise CheckpointError(NON_FINITE)
    return probs


def _cdf(logits: torch.Tensor, config: SampleConfig) -> torch.Tensor:
    """Cumulative next-character probabilities (rows, vocab), float64."""
    return next_probs(logits, config).cumsum(dim=1)
