"""`bnnames eval`: loss, bits per character and perplexity of a checkpoint on a split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bnnames.cli.common import (
    DEFAULT_CHECKPOINT,
    CheckpointOpt,
    DataOpt,
    DeviceOpt,
    StatsOpt,
    WeightsOpt,
    make_table,
    note,
    one_line_errors,
    stdout,
)
from bnnames.config import SplitChoice


@one_line_errors
def evaluate(
    ctx: typer.Context,
    split: Annotated[SplitChoice, typer.Option(help="Which split (all: the three).")] = "val",
    stats: StatsOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (a list of them for --split all).")
    ] = False,
    checkpoint: CheckpointOpt = Path(DEFAULT_CHECKPOINT),
    data: DataOpt = None,
    device: DeviceOpt = "auto",
    weights: WeightsOpt = None,
) -> None:
    """Measure a checkpoint's loss on a split, in eval mode."""
    from bnnames.api import load

    report = load(checkpoint, weights=weights, stats=stats, device=device, data=data).evaluate_report(split)
    if report.note:
        note(report.note)
    rows = [
        {
            "split": r.split,
            "loss": r.loss,
            "bits_per_char": r.bits_per_char,
            "perplexity": r.perplexity,
            "examples": r.examples,
            "stats": r.stats,
        }
        for r in report.losses
    ]
    if as_json:
        print(json.dumps(rows if split == "all" else rows[0]))
        return
    table = make_table("split", "loss (nats)", "bits/char", "perplexity", "examples", "BatchNorm stats")
    for r in rows:
        table.add_row(
            r["split"],
            f"{r['loss']:.4f}",
            f"{r['bits_per_char']:.4f}",
            f"{r['perplexity']:.3f}",
            f"{r['examples']:,}",
            r["stats"],
        )
    stdout().print(table)
