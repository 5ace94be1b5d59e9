"""`bnnames score`: how likely the model finds each given name."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from bnnames.cli.common import (
    DEFAULT_CHECKPOINT,
    CheckpointOpt,
    DataOpt,
    DeviceOpt,
    StatsOpt,
    WeightsOpt,
    fail,
    make_table,
    note,
    one_line_errors,
    stdout,
)
from bnnames.config import ScoreSort


@one_line_errors
def score(
    ctx: typer.Context,
    names: Annotated[
        list[str], typer.Argument(metavar="NAME", help="Names to score; - reads more from stdin, one a line.")
    ],
    stats: StatsOpt = None,
    sort: Annotated[
        ScoreSort,
        typer.Option(
            help="Order of the rows: input (as given), likelihood (most likely name first: favours short names) "
            "or loss (fewest nats per character first).",
        ),
    ] = "input",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of objects, one a name.")] = False,
    checkpoint: CheckpointOpt = Path(DEFAULT_CHECKPOINT),
    data: DataOpt = None,
    device: DeviceOpt = "auto",
    weights: WeightsOpt = None,
) -> None:
    """Score names: log-likelihood in nats, probability, nats per character (the end counts as one),
    and whether each is in the names file. Exit code 1 if a name has characters the model never saw."""
    from bnnames.api import load

    given = _read_names(names)
    report = load(checkpoint, weights=weights, stats=stats, device=device, data=data).score_report(given, sort)
    if report.note:
        note(escape(report.note))
    rows = [
        {
            "name": s.name,
            "log_likelihood": s.log_likelihood,
            "probability": s.probability,
            "loss": s.loss,
            "in_names_file": s.in_names_file,
            "split": s.split,
            **({"error": s.error} if s.error else {}),
        }
        for s in report.scores
    ]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        table = make_table("name", "log-likelihood (nats)", "probability", "nats/char", "in names file")
        for r in rows:
            scored = r["loss"] is not None
            table.add_row(
                escape(r["name"]),
                f"{r['log_likelihood']:.3f}" if scored else "-",
                _probability(r["probability"]) if scored else "-",
                f"{r['loss']:.4f}" if scored else escape(r["error"]),
                "?" if r["in_names_file"] is None else r["split"] or "no",
            )
        stdout().print(table)
    failed = [s for s in report.scores if s.error]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise fail(escape(f"could not score {first.name!r}: {first.error}{more}; the other names were scored"))


def _probability(p: float) -> str:
    """Two significant digits: 0.25, 1.2e-05; exp() of a very long name's log-likelihood underflows."""
    return f"{p:.2g}" if p > 0 else "<1e-308"


def _read_names(args: list[str]) -> list[str]:
    """The names in order: each argument, or for `-` every non-blank line of stdin, stripped as in a names file."""
    names: list[str] = []
    for arg in args:
        if arg == "-":
            names += [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
        else:
            names.append(arg.strip())
    return names
