"""The comparison's PNGs, the runs overlaid, one colour per run in every figure: needs matplotlib.

Built like bnnames.diagnostics.plots (the object API on the Agg canvas, written atomically). Each
figure has one legend, the runs' labels in their colours.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter

from bnnames.compare.runs import Comparison, Run
from bnnames.compare.table import weight_names
from bnnames.diagnostics.plots import DPI, UPDATE_GUIDE, density, save_png
from bnnames.errors import DiagnosticsError

TRAIN_WINDOW = 5  # the train line: the mean over this many history points (each is a few mini-batches)
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def write_figures(comparison: Comparison, out: Path) -> list[Path]:
    """Every figure the runs support, into `out`; the files written."""
    runs = comparison.runs
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = [save_png(_losses(runs), out / "loss.png"), save_png(_activations(runs), out / "activations.png")]
        if any(_recorded(run) for run in runs):
            written.append(save_png(_update_ratios(runs), out / "update_ratio.png"))
        return written
    except OSError as err:
        raise DiagnosticsError(f"cannot write the figures into {out}: {err.strerror or err}") from None


def colour(i: int) -> str:
    return COLOURS[i % len(COLOURS)]


def _losses(runs: list[Run]) -> Figure:
    """Left: the whole run (log-log, the init's loss in view); right: the last decade of steps, linear."""
    fig = Figure(figsize=(11, 4.2), dpi=DPI, layout="constrained")
    whole, late = fig.subplots(1, 2)
    last = max(run.ckpt.step for run in runs)
    for i, run in enumerate(runs):
        for ax in (whole, late):
            _loss_lines(ax, run, colour(i), late=ax is late, start=last / 10)
    for ax, title in (
        (whole, "loss over the whole run"),
        (late, f"the last decade (steps {last // 10:,} to {last:,})"),
    ):
        ax.set_xscale("log")
        ax.set_xlabel("step (log scale)")
        ax.set_ylabel("loss (nats per character)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    whole.set_yscale("log")  # a bad init starts far above ln(vocab): on a log axis the end stays readable
    for axis in (whole.xaxis, late.xaxis):
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        axis.set_minor_formatter(NullFormatter())
    whole.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    whole.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    handles = [Line2D([], [], color=colour(i), label=run.label) for i, run in enumerate(runs)]
    handles += [
        Line2D([], [], color="gray", label="val (whole split, running stats)"),
        Line2D([], [], color="gray", linestyle="--", label=f"train (mini-batches, mean of {TRAIN_WINDOW} points)"),
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    return fig


def _loss_lines(ax, run: Run, col: str, late: bool, start: float) -> None:  # type: ignore[no-untyped-def]
    """The history's val (solid) and train (dashed); a run without a history shows its curve's val points."""
    if run.history is not None and run.history.points:
        points = [p for p in run.history.points if not late or p.step >= start]
        ax.plot([p.step for p in points], [p.val for p in points], color=col, linewidth=1.5)
        trained = [p for p in run.history.points if p.train is not None]
        means = [
            sum(p.train for p in trained[max(0, i + 1 - TRAIN_WINDOW) : i + 1]) / min(i + 1, TRAIN_WINDOW)
            for i in range(len(trained))
        ]  # type: ignore[misc]
        pairs = [(p.step, m) for p, m in zip(trained, means) if not late or p.step >= start]
        ax.plot([s for s, _ in pairs], [m for _, m in pairs], color=col, linestyle="--", linewidth=1, alpha=0.8)
    else:
        points = [p for p in run.curve.points if not late or p.step >= start]
        ax.plot([p.step for p in points], [p.val for p in points], color=col, linewidth=1.5, marker="o", markersize=3)


def _activations(runs: list[Run]) -> Figure:
    """One panel per tanh layer (by position): each run's activation density at its health step."""
    layers = max(len(run.probe.layers) for run in runs)
    columns = min(layers, 3)
    rows = -(-layers // columns)
    fig = Figure(figsize=(4.2 * columns + 2, 3.2 * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).flatten()
    for k, ax in enumerate(axes):
        if k >= layers:
            ax.set_visible(False)
            continue
        for i, run in enumerate(runs):
            if k < len(run.probe.layers):
                stats = run.probe.layers[k]
                ax.plot(*density(stats.hist), color=colour(i), linewidth=1.3)
                ax.plot([], [], color=colour(i), label=f"{stats.saturation:.0%} saturated")
        ax.set_title(f"tanh {k + 1}: activation distribution", fontsize=10)
        ax.set_xlabel("tanh output")
        ax.set_ylabel("density")
        ax.legend(fontsize=7, loc="upper center", handlelength=1)
    handles = [
        Line2D([], [], color=colour(i), label=f"{run.label} (step {run.probe.step:,})") for i, run in enumerate(runs)
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    return fig


def _recorded(run: Run) -> bool:
    return run.recording is not None and len(run.recording.steps) > 1


def _update_ratios(runs: list[Run]) -> Figure:
    """One panel per weight matrix (by position): each recorded run's update:data ratio over training."""
    deepest = max(runs, key=lambda run: len(run.probe.weights))
    roles = weight_names(deepest)
    columns = min(len(roles), 3)
    rows = -(-len(roles) // columns)
    fig = Figure(figsize=(4.2 * columns + 2, 3.2 * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).flatten()
    for k, ax in enumerate(axes):
        if k >= len(roles):
            ax.set_visible(False)
            continue
        for i, run in enumerate(runs):
            names = dict(zip(weight_names(run), (w.name for w in run.probe.weights)))
            if _recorded(run) and roles[k] in names:
                recording = run.recording
                series = recording.series("weight", names[roles[k]], "update_to_data")  # type: ignore[union-attr]
                pairs = [(s, v) for s, v in zip(recording.steps, series) if v is not None]  # type: ignore[union-attr]
                ax.plot([s for s, _ in pairs], [v for _, v in pairs], color=colour(i), linewidth=1.2)
        ax.axhline(UPDATE_GUIDE, color="black", linestyle=":", linewidth=1)
        ax.set_title(f"{roles[k]} weights: update:data ratio", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("log10(std(lr·grad) / std(W))")
    handles = [Line2D([], [], color=colour(i), label=run.label) for i, run in enumerate(runs) if _recorded(run)]
    handles.append(Line2D([], [], color="black", linestyle=":", label="1e-3 (the lecture's guide)"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    return fig
