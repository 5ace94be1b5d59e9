"""`bnnames sample`: print new names, one a line (or a JSON list, or into a file)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from bnnames.cli.common import DEFAULT_CHECKPOINT, CheckpointOpt, DataOpt, DeviceOpt, WeightsOpt, note, one_line_errors
from bnnames.config import SampleConfig

S = SampleConfig()
CONSTRAINTS = "Constraints (every name satisfies all)"
OUTPUT = "Output"


@one_line_errors
def sample(
    ctx: typer.Context,
    count: Annotated[int, typer.Option("--count", "-n", help="How many names.")] = S.count,
    seed: Annotated[int | None, typer.Option(help="Same seed, same names.", show_default="random")] = None,
    temperature: Annotated[float, typer.Option(help="Below 1: safer names; above 1: wilder ones.")] = S.temperature,
    top_k: Annotated[
        int | None, typer.Option(help="Draw only among the k likeliest characters.", show_default="all")
    ] = None,
    top_p: Annotated[
        float | None,
        typer.Option(help="Draw only among the likeliest characters that together reach p.", show_default="1"),
    ] = None,
    prefix: Annotated[str, typer.Option(help="Every name starts with this.", rich_help_panel=CONSTRAINTS)] = S.prefix,
    suffix: Annotated[str, typer.Option(help="Every name ends with this.", rich_help_panel=CONSTRAINTS)] = S.suffix,
    contains: Annotated[
        list[str] | None, typer.Option(help="Every name contains this (repeatable).", rich_help_panel=CONSTRAINTS)
    ] = None,
    without: Annotated[
        list[str] | None, typer.Option(help="No name contains this (repeatable).", rich_help_panel=CONSTRAINTS)
    ] = None,
    match: Annotated[
        str | None, typer.Option(help="Every whole name matches this regex (Python re).", rich_help_panel=CONSTRAINTS)
    ] = None,
    min_length: Annotated[
        int, typer.Option(help="Shortest name, in characters.", rich_help_panel=CONSTRAINTS)
    ] = S.min_length,
    max_length: Annotated[
        int,
        typer.Option(help="Longest name, in characters (longer ones are never drawn).", rich_help_panel=CONSTRAINTS),
    ] = S.max_length,
    novel: Annotated[
        bool, typer.Option("--novel", help="Only names not in the names file.", rich_help_panel=CONSTRAINTS)
    ] = False,
    min_distance: Annotated[
        int,
        typer.Option(
            help="With --novel: at least D Levenshtein edits from every known name.", rich_help_panel=CONSTRAINTS
        ),
    ] = S.min_distance,
    unique: Annotated[bool, typer.Option("--unique", help="No name twice.", rich_help_panel=CONSTRAINTS)] = False,
    ranked: Annotated[
        bool, typer.Option("--ranked", help="The -n most likely names, most likely first, instead of draws.")
    ] = False,
    like: Annotated[
        str | None, typer.Option(help="Sort the names by Levenshtein distance to this word.", rich_help_panel=OUTPUT)
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the names to this file (atomically).", rich_help_panel=OUTPUT),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="A JSON list of {name, log_likelihood} (as `score`).", rich_help_panel=OUTPUT),
    ] = False,
    max_draws: Annotated[
        int, typer.Option(help="Most names rejection sampling draws (models too large for the exact sampler).")
    ] = S.max_draws,
    checkpoint: CheckpointOpt = Path(DEFAULT_CHECKPOINT),
    data: DataOpt = None,
    device: DeviceOpt = "auto",
    weights: WeightsOpt = None,
) -> None:
    """Sample new names from a trained model (in eval mode, calibrated statistics when present):
    drawn from the model's distribution conditioned on every constraint (see docs/sampling.md)."""
    from bnnames.api import load
    from bnnames.storage.files import atomic_writer, check_writable_folder

    config = SampleConfig(
        count=count,
        seed=seed,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        prefix=prefix,
        suffix=suffix,
        contains=tuple(contains or ()),
        without=tuple(without or ()),
        match=match,
        min_length=min_length,
        max_length=max_length,
        unique=unique,
        min_distance=min_distance,
        like=like,
        ranked=ranked,
        max_draws=max_draws,
    )
    if output is not None:
        check_writable_folder(output, "names", "--output")
    report = load(checkpoint, weights=weights, device=device, data=data).draw(config, novel)
    if report.note:
        note(report.note)
    batches: Iterable[list[str]] = report.batches
    if as_json:
        names = [name for batch in batches for name in batch]
        rows = [{"name": n, "log_likelihood": ll} for n, ll in zip(names, report.log_likelihoods(names))]
        batches = [[json.dumps(rows, ensure_ascii=False)]]
    if output is not None:
        with atomic_writer(output) as handle:
            _write(batches, handle)
        return
    try:
        for text in _lines(batches):  # each batch written as soon as it is drawn: the first names show at once
            sys.stdout.write(text)
            sys.stdout.flush()
    except BrokenPipeError:  # the reader has all it wants (`| head`): stop drawing, quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit


def _lines(batches: Iterable[list[str]]) -> Iterator[str]:
    for batch in batches:
        yield "".join(name + "\n" for name in batch)


def _write(batches: Iterable[list[str]], handle: BinaryIO) -> None:
    for text in _lines(batches):
        handle.write(text.encode("utf-8"))
