"""`bnnames sample`: print new names, one a line."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from bnnames.cli.common import DEFAULT_CHECKPOINT, CheckpointOpt, DataOpt, DeviceOpt, WeightsOpt, note, one_line_errors
from bnnames.config import SampleConfig

S = SampleConfig()


@one_line_errors
def sample(
    ctx: typer.Context,
    count: Annotated[int, typer.Option("--count", "-n", help="How many names.")] = S.count,
    seed: Annotated[int | None, typer.Option(help="Same seed, same names.", show_default="random")] = None,
    temperature: Annotated[float, typer.Option(help="Below 1: safer names; above 1: wilder ones.")] = S.temperature,
    top_k: Annotated[
        int | None, typer.Option(help="Draw only among the k likeliest characters.", show_default="all")
    ] = None,
    prefix: Annotated[str, typer.Option(help="Every name starts with this.")] = S.prefix,
    max_length: Annotated[int, typer.Option(help="Longest name, in characters.")] = S.max_length,
    novel: Annotated[bool, typer.Option("--novel", help="Only names that are not in the names file.")] = False,
    checkpoint: CheckpointOpt = Path(DEFAULT_CHECKPOINT),
    data: DataOpt = None,
    device: DeviceOpt = "auto",
    weights: WeightsOpt = None,
) -> None:
    """Sample new names from a trained model (in eval mode, calibrated statistics when present)."""
    from bnnames.sample import sample_checkpoint

    config = SampleConfig(
        count=count, seed=seed, temperature=temperature, top_k=top_k, prefix=prefix, max_length=max_length
    )
    report = sample_checkpoint(checkpoint, config, novel, data, device, weights)
    if report.note:
        note(report.note)
    try:
        for batch in report.batches:  # each batch written as soon as it is drawn: the first names show at once
            sys.stdout.write("".join(name + "\n" for name in batch))
            sys.stdout.flush()
    except BrokenPipeError:  # the reader has all it wants (`| head`): stop drawing, quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
