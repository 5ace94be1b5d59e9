"""How likely a model finds given names: log-likelihood in nats, per character, and where each name is known.

A name of n characters is n + 1 predictions (its characters, then the end token), exactly the
examples `bnnames eval` averages over; so the per-character losses of a split's names,
weighted by n + 1, average to that split's loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from bnnames.config import ScoreSort, Split, check_choice, choices
from bnnames.data import Dataset, Vocab, name_examples
from bnnames.errors import CheckpointError, ConfigError
from bnnames.evaluate import target_log_probs
from bnnames.model import NamesModel
from bnnames.storage.checkpoint import Checkpoint, dataset_if_found


@dataclass(frozen=True)
class NameScore:
    name: str
    log_likelihood: float | None  # sum of log p over the n + 1 predictions, nats (<= 0); None: not scored
    loss: float | None  # -log_likelihood / (n + 1): nats per character, the end token counted
    split: str | None  # the first of train, val, test that holds the name; None: not in the names file
    error: str | None = None  # why the name could not be scored
    names_file_found: bool = True  # False: the names file is not at hand, `in_names_file` is unknown

    @property
    def in_names_file(self) -> bool | None:
        """Whether the names file holds the name; None: unknown (the file is gone)."""
        return self.split is not None if self.names_file_found else None

    @property
    def probability(self) -> float | None:
        """P(name) under the model, exp(log_likelihood): 0.0 below float64's 1e-308."""
        return None if self.log_likelihood is None else math.exp(self.log_likelihood)


@dataclass(frozen=True)
class ScoreReport:
    scores: list[NameScore]  # sorted as asked (see `sorted_scores`): by default in the order given
    stats: str  # "running", "calibrated", or "none" for a model without BatchNorm
    note: str | None  # set when --data is not the training file, or the training file is not at hand


def score_names(model: NamesModel, vocab: Vocab, block_size: int, names: list[str]) -> list[float | None]:
    """Each name's log-likelihood in nats (float64 sums), or None when it has a character `vocab` lacks."""
    known = [name for name in dict.fromkeys(names) if _unknown(name, vocab) is None]  # each distinct name once
    totals: dict[str, float] = {}
    if known:
        examples = name_examples(known, vocab, block_size)
        x, y = examples.gather(torch.arange(len(examples)))  # (N, T), (N,): every name's n + 1 predictions in order
        device = next(model.parameters()).device
        log_probs = target_log_probs(model, x.to(device), y.to(device)).cpu()  # (N,)
        lengths = torch.tensor([len(name) + 1 for name in known])
        owner = torch.repeat_interleave(torch.arange(len(known)), lengths)  # (N,) which name each prediction is of
        sums = torch.zeros(len(known), dtype=torch.float64).index_add_(0, owner, log_probs)
        if not bool(torch.isfinite(sums).all()):
            raise CheckpointError(
                "this model gives non-finite log-likelihoods: its weights are corrupt or diverged (see `bnnames eval`)"
            )
        totals = dict(zip(known, sums.tolist()))
    return [totals.get(name) for name in names]


def sorted_scores(scores: list[NameScore], sort: ScoreSort) -> list[NameScore]:
    """`scores` as given (input), most likely first (likelihood: the whole name's probability, which
    favours short names), or fewest nats per character first (loss); names not scored go last."""
    check_choice("sort", sort, ScoreSort)
    if sort == "input":
        return scores

    def key(score: NameScore) -> float:
        assert score.log_likelihood is not None and score.loss is not None  # only scored names are sorted
        return -score.log_likelihood if sort == "likelihood" else score.loss

    scored = [s for s in scores if s.log_likelihood is not None]
    return sorted(scored, key=key) + [s for s in scores if s.log_likelihood is None]  # stable: ties as given


def _unknown(name: str, vocab: Vocab) -> str | None:
    """Why `name` cannot be scored, or None."""
    if not name:
        return "an empty name"
    missing = "".join(sorted(set(name) - set(vocab.chars)))
    return f"characters the model never saw: {missing!r}" if missing else None


def _where(dataset: Dataset) -> dict[str, str]:
    """Name -> the first split (train, val, test) that holds it."""
    where: dict[str, str] = {}
    for split in reversed(choices(Split)):  # train last, so it wins for a name in several splits
        where.update(dict.fromkeys(dataset.splits.get(split), split))
    return where


def score_model(
    ckpt: Checkpoint, model: NamesModel, kind: str, names: list[str], data: Path | None, sort: ScoreSort = "input"
) -> ScoreReport:
    """Score `names` with a checkpoint in eval mode, with the weights and statistics eval would use.

    The names file is needed only to say which names it holds: without it (gone, moved, changed)
    the names are scored all the same, `in_names_file` unknown, and the note says why.
    """
    if not names:
        raise ConfigError("no names to score: pass them as arguments, or - and one a line on stdin")
    dataset, note = dataset_if_found(ckpt, data)
    if dataset is None:
        note = f"{note} (only the 'in names file' column needs it: shown as ?)"
    totals = score_names(model, ckpt.vocab, ckpt.model_config.block_size, names)
    where = _where(dataset) if dataset is not None else {}
    scores = [
        NameScore(
            name,
            total,
            None if total is None else -total / (len(name) + 1),
            where.get(name),
            _unknown(name, ckpt.vocab),
            names_file_found=dataset is not None,
        )
        for name, total in zip(names, totals)
    ]
    return ScoreReport(sorted_scores(scores, sort), kind, note)
