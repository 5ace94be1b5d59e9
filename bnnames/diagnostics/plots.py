"""PNG plots of a diagnose report, drawn like the lecture's: needs the optional matplotlib.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot, no global state,
no display) and written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image  # matplotlib's own dependency

from bnnames.diagnostics.probe import Histogram, Probe
from bnnames.diagnostics.report import DiagnoseReport
from bnnames.errors import DiagnosticsError
from bnnames.storage.files import atomic_write_bytes

DPI = 72  # small files: these are for looking at, not for print
UPDATE_GUIDE = -3.0  # the lecture's rule of thumb: updates about 1/1000 of the data


def write_plots(report: DiagnoseReport, out: Path) -> list[Path]:
    """Write every plot the report supports into `out`; return the files written."""
    try:
        return _write_all(report, out)
    except OSError as err:
        raise DiagnosticsError(f"cannot write the plots into {out}: {err.strerror or err}") from None


def _write_all(report: DiagnoseReport, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    probes = [p for p in (report.first, report.latest) if p is not None]
    if len(probes) == 2 and probes[0].step == probes[1].step:
        probes = probes[1:]
    written = [
        save_png(_histograms(probes, "activations", "activation distribution (tanh outputs)"), out / "activations.png"),
        save_png(
            _histograms(probes, "gradients", "gradient distribution (dloss/d tanh output)"), out / "gradients.png"
        ),
        save_png(_histograms(probes, "weights", "weight gradient distribution"), out / "weight_gradients.png"),
    ]
    recording = report.recording
    if recording is not None and len(recording.steps) > 1:
        written.append(save_png(_over_training(report, "update"), out / "update_ratio.png"))
        written.append(save_png(_over_training(report, "saturation"), out / "saturation.png"))
    if len(report.curve.points) > 1:
        written.append(save_png(_loss_curve(report), out / "loss_curve.png"))
    return written


def _loss_curve(report: DiagnoseReport) -> Figure:
    """Val loss at every evaluation (whole split, eval mode) and the smoothed mini-batch training loss,
    the best step, the lr decay."""
    points, best = report.curve.points, report.curve.best
    assert best is not None
    fig = Figure(figsize=(10, 4), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    steps = [p.step for p in points]
    trained = [p for p in points if p.train is not None]
    ax.plot(
        [p.step for p in trained], [p.train for p in trained], label="train (mini-batches, smoothed)", linewidth=1.2
    )
    ax.plot(steps, [p.val for p in points], label="val", linewidth=1.2)
    ax.axvline(best.step, color="green", linestyle="--", linewidth=1, label=f"best val {best.val:.4f} @ {best.step:,}")
    if report.decay_at is not None:
        lr = [p.lr for p in points]
        label = f"lr {max(lr):g} -> {min(lr):g}"
        if report.curve.decayed_at is not None:  # the plateau schedule goes back to the best weights first
            restart = report.curve.up_to(report.curve.decayed_at).best
            label += f", from the weights of step {restart.step:,}" if restart is not None else ""
        ax.axvline(report.decay_at, color="gray", linestyle=":", linewidth=1, label=label)
    if report.curve.stopped:
        ax.axvline(steps[-1], color="black", linestyle=":", linewidth=1, label=f"stopped at a plateau @ {steps[-1]:,}")
    low = min(p.val for p in points) if not trained else min(min(p.train for p in trained), min(p.val for p in points))
    ax.set_ylim(low - 0.05, max(p.val for p in points[len(points) // 10 :]) + 0.1)  # skip the first drop
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per character)")
    ax.set_title("loss over training", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def _histograms(probes: list[Probe], kind: str, title: str) -> Figure:
    """One panel per probe (first and latest), one density curve per layer or weight."""
    fig = Figure(figsize=(7 * len(probes), 3.6), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(probes), squeeze=False)[0]
    for ax, probe in zip(axes, probes):
        for label, hist in _curves(probe, kind):
            xs, ys = density(hist)
            ax.plot(xs, ys, label=label, linewidth=1.2)
        ax.set_title(f"{title}, step {probe.step:,}", fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
        if kind != "activations":
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
    return fig


def _curves(probe: Probe, kind: str) -> list[tuple[str, Histogram]]:
    if kind == "activations":
        return [
            (f"{s.name}: mean {s.mean:+.2f}, std {s.std:.2f}, saturated {s.saturation:.1%}", s.hist)
            for s in probe.layers
        ]
    if kind == "gradients":
        return [(f"{s.name}: mean {s.grad_mean:+.1e}, std {s.grad_std:.1e}", s.grad_hist) for s in probe.layers]
    return [
        (f"{w.name} {tuple(w.shape)}: std {w.grad_std:.1e}, grad:data {_fmt(w.grad_to_data)}", w.grad_hist)
        for w in probe.weights
    ]


def density(hist: Histogram) -> tuple[list[float], list[float]]:
    """Bin centres and probability density, as torch.histogram(density=True) in the lecture."""
    width = (hist.high - hist.low) / len(hist.counts)
    total = sum(hist.counts) or 1.0
    xs = [hist.low + (i + 0.5) * width for i in range(len(hist.counts))]
    return xs, [c / (total * width) for c in hist.counts]


def _over_training(report: DiagnoseReport, kind: str) -> Figure:
    recording = report.recording
    assert recording is not None
    fig = Figure(figsize=(10, 4), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    if kind == "update":
        shapes = {w.name: tuple(w.shape) for w in report.latest.weights}
        for name in recording.weight_names:
            series = recording.series("weight", name, "update_to_data")
            ax.plot(*_defined(recording.steps, series), label=f"{name} {shapes.get(name, '')}", linewidth=1)
        ax.axhline(UPDATE_GUIDE, color="black", linestyle="--", linewidth=1, label="1e-3 guide")
        ax.set_ylabel("log10(std(lr * grad) / std(weight))")
        ax.set_title("update:data ratio over training", fontsize=10)
    else:
        for name in recording.layer_names:
            series = [None if v is None else 100 * v for v in recording.series("layer", name, "saturation")]
            ax.plot(*_defined(recording.steps, series), label=name, linewidth=1)
        ax.set_ylabel("% of |tanh| > 0.97")
        ax.set_title("tanh saturation over training", fontsize=10)
    ax.set_xlabel("step")
    ax.legend(fontsize=7, loc="upper right")
    return fig


def _defined(steps: list[int], values: list[float | None]) -> tuple[list[int], list[float]]:
    pairs = [(s, v) for s, v in zip(steps, values) if v is not None]
    return [s for s, _ in pairs], [v for _, v in pairs]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1e}"


def save_png(fig: Figure, path: Path) -> Path:
    """Render on Agg, reduce to a 256-colour palette (a few times smaller), write atomically."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
    buffer = io.BytesIO()
    image.quantize(colors=256).save(buffer, format="PNG", optimize=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path
