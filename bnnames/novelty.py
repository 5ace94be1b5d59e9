"""Which drawn names are kept (not known, not repeated, far enough from every known name) and
the --like order: edit distances by rapidfuzz (Levenshtein: insertions, deletions, substitutions)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from bnnames.config import SampleConfig

CHUNK = 512  # names compared with the whole names file at once: 512 x 32k one-byte distances, 16 MB


class Filter:
    """Keeps names in draw order: not in `known`; with --unique, not kept before; with
    --min-distance D, at least D edits from every known name."""

    def __init__(self, config: SampleConfig, known: frozenset[str]) -> None:
        self.known, self.unique, self.min_distance = known, config.unique, config.min_distance
        self.seen: set[str] = set()
        self.choices = sorted(known) if config.min_distance > 1 else []  # a fixed order: the same result

    def take(self, names: list[str], left: int) -> list[str]:
        """At most `left` of `names` that pass, in order (remembered as seen with --unique)."""
        names = [name for name in names if name not in self.known]
        if self.choices:
            names = [name for name, far in zip(names, self.far(names)) if far]
        out: list[str] = []
        for name in names:
            if len(out) == left:
                break
            if self.unique:
                if name in self.seen:
                    continue
                self.seen.add(name)
            out.append(name)
        return out

    def far(self, names: list[str]) -> list[bool]:
        """Whether each name is at least min_distance edits from every known name."""
        cutoff = self.min_distance - 1
        out: list[bool] = []
        for at in range(0, len(names), CHUNK):
            part = names[at : at + CHUNK]
            distances = process.cdist(
                part, self.choices, scorer=Levenshtein.distance, score_cutoff=cutoff, dtype=np.uint8
            )
            out += (distances.min(axis=1) > cutoff).tolist()  # above the cutoff reads cutoff + 1
        return out


def by_likeness(batches: Iterable[list[str]], word: str) -> Iterator[list[str]]:
    """Every name of `batches` as one batch, nearest to `word` first (Levenshtein), ties in draw order."""
    names = [name for batch in batches for name in batch]
    yield sorted(names, key=lambda name: Levenshtein.distance(name, word))  # sorted is stable
