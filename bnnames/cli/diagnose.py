"""`bnnames diagnose`: per-layer activation, gradient and update statistics, and their plots."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bnnames.cli.common import (
    DEFAULT_CHECKPOINT,
    CheckpointOpt,
    DataOpt,
    DeviceOpt,
    fail,
    make_table,
    note,
    one_line_errors,
    stdout,
)
from bnnames.errors import ConfigError

if TYPE_CHECKING:  # annotations only: importing it for real would import torch
    from bnnames.diagnostics.report import DiagnoseReport

PLOTS_HINT = "--out needs matplotlib for its plots: pip install 'bnnames[plots]' (or pip install matplotlib)"


@one_line_errors
def diagnose(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for the PNG plots.", show_default="no plots")
    ] = None,
    checkpoint: CheckpointOpt = Path(DEFAULT_CHECKPOINT),
    data: DataOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Activation, gradient and update statistics per layer (the lecture's health checks), and plots.

    Per tanh layer: mean, std, saturation (|t| > 0.97) and gradient; per weight: grad:data and
    update:data ratios. Statistics over training come from `bnnames train --diagnostics-every N`;
    without them the checkpoint is measured as it is, on one training-mode batch. --out DIR writes
    PNG histograms and the update:data ratio over training (needs matplotlib: the `plots` extra).
    """
    from bnnames.diagnostics.report import diagnose_checkpoint

    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file: pass a folder for the plots")
    write_plots = _plot_writer() if out is not None else None  # before the work: a missing matplotlib fails now
    report = diagnose_checkpoint(checkpoint, data, device)
    for message in report.notes:
        note(escape(message))
    console = stdout()
    console.print(_layer_table(report))
    console.print(_weight_table(report))
    if write_plots is None or out is None:
        return
    for path in write_plots(report, out):
        console.print(f"wrote {path}")


def _plot_writer() -> Callable[[DiagnoseReport, Path], list[Path]]:
    """`write_plots`, or exit 1 saying how to install matplotlib."""
    try:
        from bnnames.diagnostics.plots import write_plots
    except ImportError:
        raise fail(escape(PLOTS_HINT)) from None
    return write_plots


def _layer_table(report: DiagnoseReport) -> Table:
    probe = report.latest
    table = make_table(title=f"tanh layers at step {probe.step:,} (loss {probe.loss:.4f} on one training batch)")
    table.add_column("layer", no_wrap=True)
    for column in ("mean", "std", "saturated", "grad mean", "grad std"):
        table.add_column(column, justify="right")
    for s in probe.layers:
        table.add_row(
            s.name, f"{s.mean:+.3f}", f"{s.std:.3f}", f"{s.saturation:.2%}", f"{s.grad_mean:+.2e}", f"{s.grad_std:.2e}"
        )
    return table


def _weight_table(report: DiagnoseReport) -> Table:
    probe = report.latest
    table = make_table(
        title=f"weight matrices at lr {probe.lr:g}; update:data = log10(std(lr*grad) / std(weight)), healthy near -3"
    )
    table.add_column("weight", no_wrap=True, min_width=max(len(w.name) for w in probe.weights))
    for column in ("shape", "grad mean", "grad std", "grad:data", "update:data"):
        table.add_column(column, justify="left" if column == "shape" else "right")
    for w in probe.weights:
        ratio = "n/a" if w.grad_to_data is None else f"{w.grad_to_data:.2e}"
        update = "n/a" if w.update_to_data is None else f"{w.update_to_data:+.2f}"
        shape = "x".join(str(d) for d in w.shape)
        table.add_row(w.name, shape, f"{w.grad_mean:+.1e}", f"{w.grad_std:.2e}", ratio, update)
    return table
