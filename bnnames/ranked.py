"""`sample --ranked`: the most likely names that satisfy the constraints, most likely first, exactly.

A best-first (A*) search over the prefix tree crossed with the constraint automaton: a node is a
name so far (its context and automaton state), its cost g = log P(characters so far), its priority
g + h, where h bounds the log-probability of the best way to end it. With h never below the truth
and never rising along a path, the first complete names to leave the queue are the likeliest, in
order. For a table model h is exact, the best completion of (length, context, state) from the
max-product recursion of `bnnames.conditional`, and the search walks straight down the best
names; for the wavenet h = 0 (log p <= 0), so it visits every prefix likelier than the n-th name,
within RANKED_MAX_NODES nodes.

Up to BATCH incomplete nodes leave the queue together, for one forward pass; a complete name is
given out only from the top of the queue with no node waiting to be expanded, so the order stays exact.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator

import torch

from bnnames import conditional
from bnnames.config import SampleConfig
from bnnames.constraints import DEAD, Automaton
from bnnames.data import BOUNDARY, Vocab
from bnnames.errors import ConfigError
from bnnames.model import NamesModel
from bnnames.novelty import Filter
from bnnames.predict import TablePredictor, make_predictor, next_probs
from bnnames.runtime import THREADS, num_threads

RANKED_MAX_NODES = 2_000_000  # nodes queued before the search gives up (a few hundred MB of Python tuples)
BATCH = 256  # nodes expanded by one forward pass


class _Model:
    """Log-probabilities of the next character and the heuristic h, by context: a table key
    (table models, h exact) or the tuple of the last block_size ids (h = 0)."""

    def __init__(
        self,
        model: NamesModel,
        vocab: Vocab,
        block_size: int,
        config: SampleConfig,
        automaton: Automaton,
        keep: Filter,
        device: torch.device,
    ) -> None:
        self.predictor = make_predictor(model, vocab.size, block_size, config, device)
        self.block_size, self.vocab_size, self.best = block_size, vocab.size, None
        if isinstance(self.predictor, TablePredictor):
            probs = self.predictor.probabilities()
            self.table = probs.log()  # (contexts, V)
            best = conditional.backward(probs, automaton, config.min_length, config.max_length, "max")
            self.best = best.layers.log()  # (max_length + 1, contexts, states + 1)
            start = conditional.Start(self.predictor.key([BOUNDARY] * block_size), automaton.start, 0)
            conditional.check_enough(probs, automaton, config, start, keep.known, vocab)
        self.start = self.predictor.key([BOUNDARY] * block_size) if self.best is not None else (BOUNDARY,) * block_size

    def after(self, context, x: int):  # type: ignore[no-untyped-def]
        if self.best is not None:
            return (context * self.vocab_size + x) % self.predictor.contexts
        return (*context[1:], x)

    def log_probs(self, contexts: list) -> torch.Tensor:
        if self.best is not None:
            return self.table[torch.tensor(contexts)]
        return (
            next_probs(self.predictor.net(torch.tensor(contexts, device=self.predictor.device)), self.predictor.config)
            .log()
            .cpu()
        )

    def h(self, length: int, contexts: list, states: torch.Tensor) -> torch.Tensor:
        if self.best is None:
            return torch.zeros(len(contexts), dtype=torch.float64)
        return self.best[length][torch.tensor(contexts), states]


def ranked_batches(
    model: NamesModel,
    vocab: Vocab,
    block_size: int,
    config: SampleConfig,
    automaton: Automaton,
    keep: Filter,
    device: torch.device,
) -> Iterator[list[str]]:
    """The config.count likeliest names that satisfy `automaton`, the lengths and `keep`, best first."""
    with torch.inference_mode(), num_threads(THREADS):
        net = _Model(model, vocab, block_size, config, automaton, keep, device)
        h0 = float(net.h(0, [net.start], torch.tensor([automaton.start]))[0])
    tie = itertools.count()
    # (-(g + h), tie, complete, ids, automaton state, context, g)
    queue = [(-h0, next(tie), False, (), automaton.start, net.start, 0.0)]
    left = config.count
    while queue and left:
        batch: list[str] = []
        while queue and queue[0][2] and left:  # complete names at the top: none likelier is waiting
            name = vocab.decode(list(heapq.heappop(queue)[3]))
            taken = keep.take([name], left)
            batch += taken
            left -= len(taken)
        if batch:
            yield batch
        popped = []
        while queue and not queue[0][2] and len(popped) < BATCH:
            popped.append(heapq.heappop(queue))
        if popped:
            with torch.inference_mode(), num_threads(THREADS):
                for item in _children(net, automaton, config, popped, tie):
                    heapq.heappush(queue, item)
        if next(tie) > RANKED_MAX_NODES:
            raise ConfigError(
                f"--ranked gave up after {RANKED_MAX_NODES:,} search nodes with {config.count - left} of "
                f"{config.count} names found (this model has no exact search heuristic): lower -n or add constraints"
            )
    if left:
        raise ConfigError(
            f"there are only {config.count - left} names of {config.min_length} to {config.max_length} "
            f"characters{conditional.spelt(automaton)} that pass --novel and --min-distance: ask for at most that many"
        )


def _children(net: _Model, automaton: Automaton, config: SampleConfig, popped: list, tie) -> list:  # type: ignore[no-untyped-def]
    """The queue items after each popped node: its end (when it may end) and each next character."""
    lp = net.log_probs([item[5] for item in popped])  # (k, V)
    out = []
    for row, (_, _, _, ids, state, context, g) in zip(lp.tolist(), popped):
        n = len(ids)
        if bool(automaton.accepting[state]) and n >= config.min_length and row[BOUNDARY] > float("-inf"):
            out.append((-(g + row[BOUNDARY]), next(tie), True, ids, state, context, g + row[BOUNDARY]))
        if n >= config.max_length:
            continue
        states = automaton.step[state]  # (V,)
        chars = [
            x
            for x in range(1, len(row))
            if int(states[x]) != DEAD
            and row[x] > float("-inf")
            and n + 1 + int(automaton.shortest[states[x]]) <= config.max_length
        ]
        if not chars:
            continue
        contexts = [net.after(context, x) for x in chars]
        hs = net.h(n + 1, contexts, states[chars]).tolist()
        for x, after, h in zip(chars, contexts, hs):
            if h > float("-inf"):
                cost = g + row[x]
                out.append((-(cost + h), next(tie), False, (*ids, x), int(states[x]), after, cost))
    return out
