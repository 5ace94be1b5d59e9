"""Draw new names from a trained model, many at once, in eval mode, conditioned on the constraints.

Three ways to draw, one distribution (the model's after temperature, top-k and top-p, conditioned
on every constraint; see docs/sampling.md):
- no constraint beyond --prefix and --max-length: rows drawn from the prefix on; a row that reaches
  --max-length without its end is drawn again, never cut;
- constraints, and a model whose contexts fit a table: the exact conditional sampler
  (`bnnames.conditional`), every row a name that satisfies them;
- constraints, and a larger model (the wavenet): rejection sampling, a row abandoned the moment
  no name can come of it, at most --max-draws rows.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from bnnames import conditional
from bnnames.config import SampleConfig
from bnnames.constraints import DEAD, Automaton, compile_constraints
from bnnames.data import BOUNDARY, Vocab
from bnnames.errors import ConfigError
from bnnames.model import NamesModel
from bnnames.novelty import Filter, by_likeness
from bnnames.predict import Predictor, TablePredictor, make_predictor
from bnnames.ranked import ranked_batches
from bnnames.runtime import THREADS, num_threads
from bnnames.score import score_names
from bnnames.storage.checkpoint import Checkpoint, data_note, dataset_for

EXACT_MAX_BYTES = conditional.EXACT_MAX_BYTES
TINY_PROBABILITY = 1e-300  # a constraint set the model gives less than this is refused as impossible


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
    batches = draw_batches(model, vocab, block_size, config, generator, Filter(config, exclude), device)
    return [name for batch in batches for name in batch]


def draw_batches(
    model: NamesModel,
    vocab: Vocab,
    block_size: int,
    config: SampleConfig,
    generator: torch.Generator,
    keep: Filter | frozenset[str] = frozenset(),
    device: torch.device | None = None,  # None: where the model's parameters are
) -> Iterator[list[str]]:
    """The names of `sample_names`, batch by batch as they are drawn: a caller can write each
    batch out before the next is drawn, so memory holds one batch whatever the count (with --like,
    which sorts them, one batch of all).

    Rows advance together one character per step. Names that `keep` refuses (known, repeated, too
    near a known one) are drawn again in the next batch.
    """
    model.eval()
    device = device or next(model.parameters()).device
    keep = keep if isinstance(keep, Filter) else Filter(config, keep)
    automaton = compile_constraints(config, vocab)
    if config.ranked:
        batches = ranked_batches(model, vocab, block_size, config, automaton, keep, device)
    else:
        batches = _drawn(model, vocab, block_size, config, automaton, generator, keep, device)
    yield from by_likeness(batches, config.like) if config.like else batches


def _drawn(
    model: NamesModel,
    vocab: Vocab,
    block_size: int,
    config: SampleConfig,
    automaton: Automaton,
    generator: torch.Generator,
    keep: Filter,
    device: torch.device,
) -> Iterator[list[str]]:
    with torch.inference_mode(), num_threads(THREADS):  # the fold, as the draws: one thread count
        predictor = make_predictor(model, vocab.size, block_size, config, device)
        draw, exact = _drawer(predictor, vocab, block_size, config, automaton, keep, generator)
    rejection = config.constrained and not exact
    rows = config.batch if rejection else min(config.batch, 2 * config.count)
    # gives up on a hopeless --novel; rejection sampling, after --max-draws rows
    batches = math.ceil(config.max_draws / rows) if rejection else 100 + 10 * math.ceil(config.count / rows)
    left = config.count
    for drawn in range(1, batches + 1):  # noqa: B007 (the message reads it)
        with torch.inference_mode(), num_threads(THREADS):  # each batch alike, however it is consumed
            names = draw(rows)
        batch = keep.take(names, left)
        left -= len(batch)
        if batch:
            yield batch
        if not left:
            return
    raise ConfigError(_shortfall(config, automaton, rejection, config.count - left, drawn * rows))


def _drawer(
    predictor: Predictor,
    vocab: Vocab,
    block_size: int,
    config: SampleConfig,
    automaton: Automaton,
    keep: Filter,
    generator: torch.Generator,
) -> tuple[Callable[[int], list[str]], bool]:
    """How to draw `rows` names (those that come out valid, in order), and whether it is exact.

    Every way starts after the prefix: its characters are given, not drawn (top-k and top-p
    apply to the drawn ones), so the distribution is the model's P(rest | prefix).
    """
    prefix_ids = vocab.encode(config.prefix)
    context = ([BOUNDARY] * block_size + prefix_ids)[-block_size:]
    state = automaton.start
    for i in prefix_ids:
        state = int(automaton.step[state, i])  # live: --prefix is one of the constraints
    fits = isinstance(predictor, TablePredictor) and (
        conditional.table_bytes(predictor.contexts, automaton, config.max_length) <= EXACT_MAX_BYTES
    )
    if fits and (config.constrained or config.unique or keep.known or config.top_k or config.top_p):
        assert isinstance(predictor, TablePredictor)
        exact = _Exact(predictor, config, automaton, conditional.Start(predictor.key(context), state, len(prefix_ids)))
        if config.unique or keep.known:
            exact.check_enough(keep, vocab)
        if config.constrained:
            return exact.drawer(vocab, generator), True
    rule = _Rule(automaton, config, len(prefix_ids), state) if config.constrained else None
    steps = config.max_length - len(prefix_ids) + 1  # the last step may only end the name

    def draw(rows: int) -> list[str]:
        ids = _sample_batch(predictor, context, rows, steps, generator, rule)
        ok = ids.eq(BOUNDARY).any(dim=1) if rule is None else rule.ok
        if rule is None and not config.prefix:
            ok &= ids[:, 0] != BOUNDARY  # an empty name is not a name
        return [config.prefix + vocab.decode(row) for row, good in zip(ids.tolist(), ok.tolist()) if good]

    return draw, False


class _Exact:
    """The exact conditional sampler of a table model, built after one refusal if the model gives
    the constraints (almost) no probability (top-k and top-p can make it exactly 0)."""

    def __init__(
        self, predictor: TablePredictor, config: SampleConfig, automaton: Automaton, start: conditional.Start
    ) -> None:
        self.config, self.automaton, self.start = config, automaton, start
        self.probs = predictor.probabilities()
        self.table = conditional.backward(self.probs, automaton, config.min_length, config.max_length)
        total = self.table.at(start)
        if not total > TINY_PROBABILITY:
            raise ConfigError(
                f"names of {config.min_length} to {config.max_length} characters{conditional.spelt(automaton)} "
                f"have probability {total:.3g} under this model: it can draw none; relax the constraints"
                + (" or --top-k/--top-p" if config.top_k or config.top_p else "")
            )

    def drawer(self, vocab: Vocab, generator: torch.Generator) -> Callable[[int], list[str]]:
        def draw(rows: int) -> list[str]:
            ids = conditional.draw(self.probs, self.table, self.automaton, self.start, rows, generator)
            return [self.config.prefix + vocab.decode(row) for row in ids.tolist()]

        return draw

    def check_enough(self, keep: Filter, vocab: Vocab) -> None:
        conditional.check_enough(self.probs, self.automaton, self.config, self.start, keep.known, vocab)


class _Rule:
    """Rejection's bookkeeping: each row's automaton state; a row is abandoned (done, not ok)
    the moment its state is dead or it could not end within --max-length, so it costs no more steps."""

    def __init__(self, automaton: Automaton, config: SampleConfig, start_length: int, start_state: int) -> None:
        self.automaton, self.config = automaton, config
        self.start_length, self.start_state = start_length, start_state

    def start(self, rows: int) -> None:
        self.state = torch.full((rows,), self.start_state, dtype=torch.long)
        self.ok = torch.zeros(rows, dtype=torch.bool)

    def advance(self, nxt: torch.Tensor, fresh: torch.Tensor, t: int) -> torch.Tensor:
        """After step t (0-based) drew nxt (rows,) for the rows still going (`fresh`): the rows abandoned."""
        ends = fresh & (nxt == BOUNDARY)
        length = self.start_length + t  # the name's length before this step's character
        self.ok |= ends & self.automaton.accepting[self.state] & (length >= self.config.min_length)
        going = fresh & (nxt != BOUNDARY)
        self.state = torch.where(going, self.automaton.step[self.state, nxt], self.state)
        reach = length + 1 + self.automaton.shortest[self.state.clamp_min(0)]
        return going & ((self.state == DEAD) | (reach > self.config.max_length))


def _sample_batch(
    predictor: Predictor,
    context: list[int],
    rows: int,
    steps: int,
    generator: torch.Generator,
    rule: _Rule | None = None,
) -> torch.Tensor:
    """Sampled ids after the prefix: (rows, steps), BOUNDARY once a row is done.

    Each row draws by inverting its cumulative distribution at a uniform number: one random
    number per row and step (torch.multinomial does much more work per draw: docs/performance.md).
    """
    state = predictor.start(context, rows)
    out = torch.full((rows, steps), BOUNDARY, dtype=torch.long)
    done = torch.zeros(rows, dtype=torch.bool)
    if rule is not None:
        rule.start(rows)
    for t in range(steps):
        cdf = predictor.cdf(state)  # (rows, vocab) float64, cumulative
        u = torch.rand(rows, 1, generator=generator, dtype=torch.float64) * cdf[:, -1:]
        nxt = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_max(cdf.shape[1] - 1)  # (rows,)
        nxt.masked_fill_(done, BOUNDARY)
        out[:, t] = nxt
        if rule is not None:
            done |= rule.advance(nxt, ~done, t)
        done |= nxt == BOUNDARY
        if bool(done.all()):
            break
        state = predictor.advance(state, nxt)
    return out


def _shortfall(config: SampleConfig, automaton: Automaton, rejection: bool, found: int, draws: int) -> str:
    if not rejection:
        return (
            f"drew only {found} of {config.count} names in {draws:,} draws (the rest were empty, too long or "
            "already known): lower -n, raise --temperature or drop --novel, --unique or --min-distance"
        )
    return (
        f"found {found} of {config.count} names satisfying {automaton.described} in {draws:,} draws "
        "(rejection sampling, exact but bounded: this model is too large for the exact conditional sampler): "
        "relax the constraints, lower -n or raise --max-draws"
    )


@dataclass(frozen=True)
class SampleReport:
    batches: Iterator[list[str]]  # drawn as they are read: write each out before the next is drawn
    seed: int
    note: str | None
    log_likelihoods: Callable[[list[str]], list[float | None]]  # what `bnnames score` gives each name


def sample_model(
    ckpt: Checkpoint, model: NamesModel, config: SampleConfig, novel: bool, data: Path | None, target: torch.device
) -> SampleReport:
    """Names from `model` (a checkpoint's chosen weights and statistics, on `target`): `novel`
    ones only leave out the names of the checkpoint's names file (or `data`)."""
    if config.min_distance and not novel:
        raise ConfigError("--min-distance measures the distance to the names file: add --novel")
    known: list[str] = []
    note = None
    if novel:
        dataset = dataset_for(ckpt, data)
        known, note = dataset.names, data_note(ckpt, dataset)
    seed = config.seed if config.seed is not None else secrets.randbits(62)
    generator = torch.Generator().manual_seed(seed)
    block_size = ckpt.model_config.block_size
    keep = Filter(config, frozenset(known))
    compile_constraints(config, ckpt.vocab)  # a bad constraint fails here, before the first batch is asked for
    batches = draw_batches(model, ckpt.vocab, block_size, config, generator, keep, target)
    return SampleReport(batches, seed, note, lambda names: score_names(model, ckpt.vocab, block_size, names))
