"""`bnnames export`: the model as an ONNX file or a self-contained web page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from bnnames.cli.common import DEFAULT_CHECKPOINT, CheckpointOpt, StatsOpt, WeightsOpt, one_line_errors, stdout


@one_line_errors
def export(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (replaced atomically).")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="What to write: onnx or html.", show_default="from -o's suffix"),
    ] = None,
    checkpoint: CheckpointOpt = Path(DEFAULT_CHECKPOINT),
    weights: WeightsOpt = None,
    stats: StatsOpt = None,
) -> None:
    """Export the model that `sample` uses: onnx (input `context`, output `logits`, see docs/export.md)
    or html (one page that makes names offline, weights inline, from file:// too)."""
    from bnnames.api import load
    from bnnames.export.run import format_for

    format_for(fmt, output)  # a bad format fails before the checkpoint is read
    report = load(checkpoint, weights=weights, stats=stats).export(output, fmt)
    stdout().print(
        f"wrote {escape(str(report.path))}: {report.format}, {report.bytes:,} bytes, "
        f"{report.parameters:,} parameters ({report.stats} statistics)"
    )
