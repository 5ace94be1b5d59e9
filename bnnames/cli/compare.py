"""`bnnames compare`: checkpoints side by side, a column each; figures and a page with --out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bnnames.cli.common import DeviceOpt, make_table, note, one_line_errors, stderr, stdout
from bnnames.errors import ConfigError

if TYPE_CHECKING:  # annotations only: importing it for real would import torch
    from bnnames.compare.runs import Comparison

PLOTS_HINT = "figures need matplotlib: pip install 'bnnames[plots]'"


@one_line_errors
def compare(
    ctx: typer.Context,
    checkpoints: Annotated[
        list[Path], typer.Argument(metavar="CHECKPOINT", help="Two or more checkpoints.", show_default=False)
    ],
    name: Annotated[
        list[str] | None,
        typer.Option("--name", help="A label per checkpoint, in order (repeat it).", show_default="the file stems"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the PNG figures and index.md.", show_default="no figures"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as one JSON object.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """Put runs side by side: settings, losses (running and calibrated statistics) and health.

    Losses are `bnnames eval`'s (the best weights when kept) on every split; the health figures are
    `bnnames diagnose`'s (tanh saturation, dead units, grad:data and update:data per weight). --out DIR
    writes the runs' loss curves, activation histograms and update:data ratios overlaid, one colour
    per run, and index.md showing them with the table (needs matplotlib: the `plots` extra).
    """
    from bnnames.compare.runs import compare_checkpoints

    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file: pass a folder for the figures")
    comparison = compare_checkpoints(checkpoints, name, device)
    for warning in comparison.warnings:
        stderr().print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if as_json:
        from bnnames.compare.table import comparison_json

        print(json.dumps(comparison_json(comparison)))
    else:
        stdout().print(_table(comparison))
    if out is not None:
        for path in _write_out(comparison, out):
            stderr().print(f"wrote {escape(str(path))}", soft_wrap=True)


def _table(comparison: Comparison) -> Table:
    from bnnames.compare.table import table_rows

    table = make_table(show_edge=False, pad_edge=False, padding=(0, 1))
    table.add_column("", no_wrap=True)
    for run in comparison.runs:
        table.add_column(escape(run.label), justify="right", overflow="fold")
    for row in table_rows(comparison):
        if row.cells is None:
            table.add_row(f"[bold]{escape(row.label)}[/]", *[""] * len(comparison.runs))
        else:
            table.add_row(escape(row.label), *(escape(cell) for cell in row.cells))
    return table


def _write_out(comparison: Comparison, out: Path) -> list[Path]:
    from bnnames.compare.page import write_page

    try:
        from bnnames.compare.plots import write_figures
    except ImportError:
        note(escape(f"{PLOTS_HINT} (index.md holds the table without them)"))
        return [write_page(comparison, out, [], PLOTS_HINT)]
    figures = write_figures(comparison, out)
    return [*figures, write_page(comparison, out, figures)]
