"""`bnnames calibrate`: BatchNorm population statistics over the whole training split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bnnames.cli.common import (
    DEFAULT_CHECKPOINT,
    CalibratedCheckpointOpt,
    DataOpt,
    DeviceOpt,
    WeightsOpt,
    make_table,
    note,
    one_line_errors,
    stdout,
)
from bnnames.config import Method


@one_line_errors
def calibrate(
    ctx: typer.Context,
    method: Annotated[
        Method, typer.Option(help="full: mean/var over the training split; paper: Algorithm 2's mini-batch averages.")
    ] = "full",
    checkpoint: CalibratedCheckpointOpt = Path(DEFAULT_CHECKPOINT),
    data: DataOpt = None,
    device: DeviceOpt = "auto",
    weights: WeightsOpt = None,
) -> None:
    """Measure each BatchNorm input over the training split and store it in the checkpoint.

    The running statistics are kept; `eval` and `sample` then use the calibrated ones.
    """
    from bnnames.calibrate import calibrate_checkpoint

    report = calibrate_checkpoint(checkpoint, method, data, device, weights)
    for message in report.notes:
        note(message)
    out = stdout()
    out.print(
        f"calibrated {report.layers} BatchNorm layer(s) over {report.examples:,} training examples "
        f"(method {report.method}) -> {checkpoint}"
    )
    table = make_table("BatchNorm stats", "train loss", "val loss")
    for kind, losses in report.losses.items():
        table.add_row(kind, f"{losses['train']:.4f}", f"{losses['val']:.4f}")
    out.print(table)
