"""Medians with their spread, and the table the benchmark prints."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Figure:
    """One measured quantity over several runs."""

    what: str
    unit: str
    median: float
    low: float
    high: float
    runs: int
    baseline: str = ""  # what it is compared with, when paired
    baseline_median: float | None = None
    note: str = ""

    @classmethod
    def of(cls, what: str, unit: str, values: list[float], **extra: object) -> Figure:
        median, low, high = statistics.median(values), min(values), max(values)
        return cls(what, unit, median, low, high, len(values), **extra)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def table(figures: list[Figure]) -> str:
    rows = [("figure", "median", "min-max", "runs", "compared with", "note")]
    for f in figures:
        spread = f"{_num(f.low)}-{_num(f.high)}"
        base = f"{f.baseline}: {_num(f.baseline_median)} {f.unit}" if f.baseline_median is not None else f.baseline
        rows.append((f.what, f"{_num(f.median)} {f.unit}", spread, str(f.runs), base, f.note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
