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
given out only from the top of the queue with no node waiting to be expanded, so the order stays
exact. A node's next steps are queued one at a time, best first (`_Children`): the queue holds
about one entry per step taken instead of one per character of every expanded node.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

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

RANKED_MAX_NODES = 300_000  # nodes expanded before the search gives up (each keeps its ~V next steps: ~1 KB)
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


@dataclass(frozen=True)
class _Node:
    ids: tuple[int, ...]  # the name so far
    state: int  # its automaton state
    context: object  # its context (a table key, or the last block_size ids)
    g: float  # log P(ids)


@dataclass(frozen=True)
class _Children:
    """A node's next steps, best first: one queue entry stands for the best one not yet taken
    (the next is queued when it is taken), so the queue grows by about one entry a step, not V."""

    parent: _Node
    order: list[tuple[float, int, float]]  # (priority g + h, id, g), descending; BOUNDARY: the name ends


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
    root = _Children(_Node((), BOUNDARY, None, 0.0), [(h0, -1, 0.0)])  # -1: the empty name's node itself
    queue: list[tuple[float, int, _Children, int]] = [(-h0, next(tie), root, 0)]  # (-priority, tie, children, at)
    left, expanded = config.count, 0
    while queue and left:
        batch: list[str] = []
        while queue and _ends(queue[0]) and left:  # complete names at the top: none likelier is waiting
            children, at = _pop(queue, tie)
            taken = keep.take([vocab.decode(list(children.parent.ids))], left)
            batch += taken
            left -= len(taken)
        if batch:
            yield batch
        popped: list[_Node] = []
        while queue and not _ends(queue[0]) and len(popped) < BATCH:
            children, at = _pop(queue, tie)
            popped.append(_child(net, automaton, children, at, net.start))
        if popped:
            expanded += len(popped)
            with torch.inference_mode(), num_threads(THREADS):
                for children in _expand(net, automaton, config, popped):
                    heapq.heappush(queue, (-children.order[0][0], next(tie), children, 0))
        if expanded > RANKED_MAX_NODES:
            raise ConfigError(
                f"--ranked gave up after expanding {RANKED_MAX_NODES:,} search nodes with {config.count - left} of "
                f"{config.count} names found (this model has no exact search heuristic): lower -n or add constraints"
            )
    if left:
        raise ConfigError(
            f"there are only {config.count - left} names of {config.min_length} to {config.max_length} "
            f"characters{conditional.spelt(automaton)} that pass --novel and --min-distance: ask for at most that many"
        )


def _ends(entry: tuple[float, int, _Children, int]) -> bool:
    return entry[2].order[entry[3]][1] == BOUNDARY


def _pop(queue: list, tie: Iterator[int]) -> tuple[_Children, int]:
    """The best entry off the queue, its next sibling queued in its place."""
    _, _, children, at = heapq.heappop(queue)
    if at + 1 < len(children.order):
        heapq.heappush(queue, (-children.order[at + 1][0], next(tie), children, at + 1))
    return children, at


def _child(net: _Model, automaton: Automaton, children: _Children, at: int, start: object) -> _Node:
    _, x, g = children.order[at]
    parent = children.parent
    if x < 0:  # the root
        return _Node((), automaton.start, start, 0.0)
    return _Node((*parent.ids, x), int(automaton.step[parent.state, x]), net.after(parent.context, x), g)


def _expand(net: _Model, automaton: Automaton, config: SampleConfig, popped: list[_Node]) -> list[_Children]:
    """Each popped node's next steps, best first: its end (when it may end) and each next character."""
    lp = net.log_probs([node.context for node in popped])  # (k, V)
    out = []
    for row, node in zip(lp.tolist(), popped):
        n = len(node.ids)
        order = []
        if bool(automaton.accepting[node.state]) and n >= config.min_length and row[BOUNDARY] > float("-inf"):
            order.append((node.g + row[BOUNDARY], BOUNDARY, node.g + row[BOUNDARY]))
        if n < config.max_length:
            states = automaton.step[node.state]  # (V,)
            chars = [
                x
                for x in range(1, len(row))
                if int(states[x]) != DEAD
                and row[x] > float("-inf")
                and n + 1 + int(automaton.shortest[states[x]]) <= config.max_length
            ]
            if chars:
                hs = net.h(n + 1, [net.after(node.context, x) for x in chars], states[chars]).tolist()
                order += [(node.g + row[x] + h, x, node.g + row[x]) for x, h in zip(chars, hs) if h > float("-inf")]
        if order:
            order.sort(key=lambda item: -item[0])  # stable: ties in id order
            out.append(_Children(node, order))
    return out
