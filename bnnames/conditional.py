"""Exact sampling conditioned on the constraints, for models whose contexts fit a table.

With P(x | c) for every context c, the backward recursion over (length n, context c, automaton
state s)

    W[n][c, s] = P(end | c) * [s accepting and n >= min_length]
               + sum over characters x of P(x | c) * W[n + 1][c x, step(s, x)]      (n < max_length)

gives W[n][c, s], the probability that a name continued from there satisfies every constraint
(`c x` is the context after x: its oldest character dropped). Drawing each next character with
weight P(x | c) * W[n + 1][c x, s'] (and the end with its term above), normalised, draws whole
names with probability P(name) / W[0][start]: exactly the distribution of rejection sampling.
The same recursion with max in place of the sum gives the best completion of each (n, c, s),
the exact heuristic of `bnnames.ranked`; with P > 0 in place of P, how many names there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from bnnames.config import SampleConfig
from bnnames.constraints import Automaton
from bnnames.data import BOUNDARY, Vocab
from bnnames.errors import ConfigError

EXACT_MAX_BYTES = 1 << 29  # the tables W (max_length + 1, contexts, states + 1) float64, at most 512 MiB
MAX_CHUNK = 1 << 22  # elements of one block of the max-product's (contexts, vocab, states) products

Combine = Literal["sum", "max"]


def table_bytes(contexts: int, automaton: Automaton, max_length: int) -> int:
    return (max_length + 1) * contexts * (automaton.states + 1) * 8


@dataclass(frozen=True)
class Backward:
    """W[n] for n = 0..max_length, each (contexts, states + 1): the last column, the DEAD state, 0."""

    layers: torch.Tensor  # (max_length + 1, contexts, states + 1) float64
    ends: torch.Tensor  # (max_length + 1, states) float64: 1 where a name may end at length n in state s

    def at(self, start: Start) -> float:
        return float(self.layers[start.length, start.key, start.state])


@dataclass(frozen=True)
class Start:
    """Where every row starts: after the prefix (its context's key, automaton state and length)."""

    key: int
    state: int
    length: int


def backward(
    probs: torch.Tensor, automaton: Automaton, min_length: int, max_length: int, combine: Combine = "sum"
) -> Backward:
    """The recursion above, from n = max_length down to 0; probs (contexts, vocab) float64, row = key."""
    contexts, vocab = probs.shape
    states = automaton.states
    ends = torch.zeros(max_length + 1, states, dtype=torch.float64)
    ends[min_length:] = automaton.accepting.double()
    layers = torch.zeros(max_length + 1, contexts, states + 1, dtype=torch.float64)
    # c = d * U + u (d the oldest character); after x the context is u * V + x
    older = probs.view(vocab, contexts // vocab, vocab).permute(1, 0, 2)  # (U, d, x)
    moves = automaton.step.T  # (V, S): DEAD (-1) reads the last column, always 0
    chars = torch.arange(vocab)[:, None]  # (V, 1)
    for n in range(max_length, -1, -1):
        layer = probs[:, BOUNDARY, None] * ends[n]  # (C, S): ending here
        if n < max_length:
            after = layers[n + 1].view(contexts // vocab, vocab, states + 1)[:, chars, moves]  # (U, x, S)
            going = _combine(older, after, combine).permute(1, 0, 2).reshape(contexts, states)  # (C, S)
            layer = layer + going if combine == "sum" else torch.maximum(layer, going)
        layers[n, :, :states] = layer
    return Backward(layers, ends)


def _combine(older: torch.Tensor, after: torch.Tensor, combine: Combine) -> torch.Tensor:
    """(U, d, S): sum (a batched matrix product) or max over x of older[u, d, x] * after[u, x, s]."""
    if combine == "sum":
        return torch.bmm(older, after)
    u, d, x = older.shape
    block = max(1, MAX_CHUNK // (d * x * after.shape[2]))
    parts = [(older[i : i + block, :, :, None] * after[i : i + block, None]).amax(dim=2) for i in range(0, u, block)]
    return torch.cat(parts)


def draw(
    probs: torch.Tensor,
    table: Backward,
    automaton: Automaton,
    start: Start,
    rows: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """`rows` names drawn from the conditional distribution: the ids after the prefix
    (rows, max_length - start.length + 1), each row its characters then BOUNDARY (and BOUNDARY
    after). One uniform number per row and step."""
    max_length = table.layers.shape[0] - 1
    contexts, vocab = probs.shape
    keep = contexts // vocab
    key = torch.full((rows,), start.key, dtype=torch.long)
    state = torch.full((rows,), start.state, dtype=torch.long)
    out = torch.full((rows, max_length - start.length + 1), BOUNDARY, dtype=torch.long)
    done = torch.zeros(rows, dtype=torch.bool)
    chars = torch.arange(vocab)
    for n in range(start.length, max_length + 1):
        p = probs[key]  # (rows, V)
        weights = torch.zeros_like(p)
        if n < max_length:
            nxt_key = (key % keep)[:, None] * vocab + chars  # (rows, V)
            weights = p * table.layers[n + 1][nxt_key, automaton.step[state]]
        weights[:, BOUNDARY] = p[:, BOUNDARY] * table.ends[n][state]
        cdf = weights.cumsum(dim=1)
        u = torch.rand(rows, 1, generator=generator, dtype=torch.float64) * cdf[:, -1:]
        nxt = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_max(vocab - 1)  # (rows,)
        nxt.masked_fill_(done, BOUNDARY)
        out[:, n - start.length] = nxt
        done |= nxt == BOUNDARY
        if bool(done.all()):
            break
        state = torch.where(done, state, automaton.step[state, nxt])
        key = (key % keep) * vocab + nxt
    return out


def check_enough(
    probs: torch.Tensor, automaton: Automaton, config: SampleConfig, start: Start, known: frozenset[str], vocab: Vocab
) -> None:
    """With --unique, --novel or --ranked, refuse at once a count above the names there are: the
    recursion with P > 0 in place of P counts the names of nonzero probability."""
    if table_bytes(len(probs), automaton, config.max_length) > EXACT_MAX_BYTES:
        return
    exist = backward((probs > 0).double(), automaton, config.min_length, config.max_length).at(start)
    chars = set(vocab.chars)
    possible = (probs > 0).tolist() if config.top_k or config.top_p else None
    taken = sum(
        1
        for name in known
        if config.min_length <= len(name) <= config.max_length
        and name.startswith(config.prefix)
        and set(name) <= chars
        and automaton.accepts(vocab.encode(name))
        and (possible is None or _drawable(vocab.encode(name), len(config.prefix), possible))
    )
    if exist - taken < config.count:
        where = f" ({taken:,} more are in the names file)" if known else ""
        raise ConfigError(
            f"there are only {max(exist - taken, 0):,.0f} different names of {config.min_length} to "
            f"{config.max_length} characters{spelt(automaton)}{where}: ask for at most that many with -n"
        )


def _drawable(ids: list[int], given: int, possible: list[list[bool]]) -> bool:
    """Whether a name has nonzero probability after top-k/top-p (its first `given` ids are the
    prefix, given not drawn): contexts as table keys from the empty one (key 0)."""
    contexts, vocab = len(possible), len(possible[0])
    key = 0
    for at, i in enumerate([*ids, BOUNDARY]):
        if at >= given and not possible[key][i]:
            return False
        key = (key * vocab + i) % contexts
    return True


def spelt(automaton: Automaton) -> str:
    """' with --suffix 'a' ...' for messages, or nothing without a constraint."""
    return "" if automaton.trivial else f" with {automaton.described}"
