"""The comparison as one table (a row per figure, a column per run) and as JSON data.

The terminal (rich, in bnnames.cli.compare) and the markdown page draw the same rows. Layers and
weights are matched by position, not by name: a model without BatchNorm numbers its layers
differently (`layers.2 (Tanh)` against `layers.3 (Tanh)`), so rows say "tanh 1", "hidden 1".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bnnames.compare.runs import STATS, Comparison, Run
from bnnames.config import Split, choices, to_json_dict
from bnnames.history import history_to_json

MISSING = "–"  # a figure this run does not have (a layer it lacks)


@dataclass(frozen=True)
class Row:
    label: str
    cells: list[str] | None  # None: a section heading


def table_rows(comparison: Comparison) -> list[Row]:
    runs = comparison.runs
    rows = [Row("run", None)]
    for label, describe in _RUN_ROWS:
        cells = [describe(run) for run in runs]
        if label not in _WHEN_THEY_DIFFER or len(set(cells)) > 1:
            rows.append(Row(label, cells))
    for stats in STATS:
        rows.append(Row(f"loss, {stats} statistics", None))
        if stats == "calibrated":
            rows.append(Row("  calibrated", [_calibrated(run) for run in runs]))
            if all(isinstance(_losses(run, stats), str) for run in runs):
                continue  # nothing calibrated: one row says so
        rows += [Row(f"  {split}", [_loss(run, stats, split) for run in runs]) for split in choices(Split)]
        rows.append(Row("  val − train", [_gap(run, stats) for run in runs]))
    if any(not isinstance(_losses(run, "calibrated"), str) for run in runs):
        rows.append(Row("  calibrated − running, val", [_calibration_gain(run) for run in runs]))
    rows.append(Row("health (last weights)", None))
    rows.append(Row("  at step", [f"{run.probe.step:,}" for run in runs]))
    rows.append(Row("  measured", ["recorded" if run.recorded else "now" for run in runs]))
    for i in range(max(len(run.probe.layers) for run in runs)):
        rows.append(Row(f"  tanh {i + 1} saturated", [_layer(run, i, "saturation") for run in runs]))
        rows.append(Row(f"  tanh {i + 1} dead units", [_layer(run, i, "dead") for run in runs]))
    deepest = max(runs, key=lambda run: len(run.probe.weights))
    for kind, title in (("grad_to_data", "grad:data"), ("update_to_data", "update:data")):
        rows += [Row(f"  {name} {title}", [_weight(run, name, kind) for run in runs]) for name in weight_names(deepest)]
    return rows


def weight_names(run: Run) -> list[str]:
    """The weight matrices by position: the embedding, each hidden Linear, the output Linear."""
    count = len(run.probe.weights)
    return ["embedding", *(f"hidden {i}" for i in range(1, count - 1)), "output"][:count]


def _arch(run: Run) -> str:
    m = run.ckpt.model_config
    return f"{m.arch} {m.n_layers}×{m.n_hidden}"


def _norm(run: Run) -> str:
    m = run.ckpt.model_config
    return str(m.norm)  # any value a checkpoint names: batch, none, layer, ...


def _calibrated(run: Run) -> str:
    if run.stats_kind == "none":
        return "no BN"
    if run.losses["calibrated"] is None:
        return "no"
    return str(run.ckpt.calibration.get("method", "yes"))


def _time(run: Run) -> str:
    if run.history is None:
        return "not recorded"
    return f"{run.history.seconds:,.1f} s"


def _best(run: Run) -> str:
    best = run.curve.best
    return MISSING if best is None else f"{best.val:.4f}"


def _last(run: Run) -> str:
    return f"{run.curve.points[-1].val:.4f}" if run.curve.points else MISSING


_RUN_ROWS = [
    ("  architecture", _arch),
    ("  norm", _norm),
    ("  BN arithmetic", lambda run: run.ckpt.model_config.bn_style if run.stats_kind == "batch" else MISSING),
    ("  context, embedding", lambda run: f"{run.ckpt.model_config.block_size}, {run.ckpt.model_config.n_embd}"),
    ("  hidden gain", lambda run: f"{run.ckpt.model_config.gain:.3g}"),
    ("  output scale", lambda run: f"{run.ckpt.model_config.out_scale:g}"),
    ("  output init", lambda run: run.ckpt.model_config.out_init),
    ("  BN on logits", lambda run: "yes" if run.ckpt.model_config.batch_norm_on_logits else "no"),
    ("  lr", lambda run: f"{run.ckpt.train_config.lr:g}"),
    ("  parameters", lambda run: f"{run.parameters:,}"),
    ("  steps", lambda run: f"{run.ckpt.step:,}"),
    ("  train time", _time),
    ("  history points", lambda run: "not recorded" if run.history is None else f"{len(run.history.points):,}"),
    ("  best val", _best),
    ("  best at step", lambda run: MISSING if run.curve.best is None else f"{run.curve.best.step:,}"),
    ("  last val", _last),
    ("  losses of weights", lambda run: run.weights),
]


_WHEN_THEY_DIFFER = ("  output init", "  BN on logits")  # rows shown only when the runs differ in them


def _loss(run: Run, stats: str, split: str) -> str:
    losses = _losses(run, stats)
    return losses if isinstance(losses, str) else f"{losses[split]:.4f}"


def _gap(run: Run, stats: str) -> str:
    losses = _losses(run, stats)
    return losses if isinstance(losses, str) else _signed(losses["val"] - losses["train"])


def _losses(run: Run, stats: str) -> dict[str, float] | str:
    if run.stats_kind == "none":
        return run.losses["running"] if stats == "running" else MISSING  # type: ignore[return-value]
    losses = run.losses[stats]
    return MISSING if losses is None else losses


def _calibration_gain(run: Run) -> str:
    running, calibrated = _losses(run, "running"), _losses(run, "calibrated")
    if isinstance(calibrated, str) or isinstance(running, str):
        return MISSING
    return _signed(calibrated["val"] - running["val"])


def _signed(value: float) -> str:
    """+0.0123 / -0.0123, and 0.0000 for what rounds to nothing (no "-0.0000")."""
    return "0.0000" if round(value, 4) == 0 else f"{value:+.4f}"


def _layer(run: Run, i: int, field: str) -> str:
    if i >= len(run.probe.layers):
        return MISSING
    layer = run.probe.layers[i]
    if field == "saturation":
        return f"{layer.saturation:.1%}"
    return "not recorded" if layer.dead is None else f"{layer.dead} / {layer.units}"


def _weight(run: Run, role: str, field: str) -> str:
    weights = dict(zip(weight_names(run), run.probe.weights))
    if role not in weights:
        return MISSING
    value = getattr(weights[role], field)
    if value is None:
        return "n/a"
    return f"{value:.2e}" if field == "grad_to_data" else f"{value:+.2f}"


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """The same figures as data: raw numbers, None where the table says a run lacks one."""
    return {"runs": [_run_json(run) for run in comparison.runs], "warnings": comparison.warnings}


def _run_json(run: Run) -> dict[str, Any]:
    best = run.curve.best
    names = weight_names(run)
    return {
        "label": run.label,
        "path": str(run.path),
        "model_config": to_json_dict(run.ckpt.model_config),
        "train_config": to_json_dict(run.ckpt.train_config),
        "parameters": run.parameters,
        "steps": run.ckpt.step,
        "seconds": None if run.history is None else run.history.seconds,
        "best_val": None if best is None else {"step": best.step, "val": best.val},
        "last_val": run.curve.points[-1].val if run.curve.points else None,
        "weights": {"kind": run.weights, "step": run.weights_step},
        "stats": "none" if run.stats_kind == "none" else "batch",
        "losses": run.losses,
        "health": {
            "step": run.probe.step,
            "recorded": run.recorded,
            "layers": [
                {"name": s.name, "saturation": s.saturation, "dead": s.dead, "units": s.units} for s in run.probe.layers
            ],
            "weights": [
                {"name": w.name, "role": role, "grad_to_data": w.grad_to_data, "update_to_data": w.update_to_data}
                for w, role in zip(run.probe.weights, names)
            ],
        },
        "history": None if run.history is None else history_to_json(run.history),
    }
