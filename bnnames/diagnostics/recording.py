"""Diagnostics recorded during training, kept in a JSON sidecar next to the checkpoint.

`bnnames.safetensors` gets `bnnames.diagnostics.json`: the scalar statistics of every probe
(for the over-training plots) and the full probes, histograms included, of the first and the
latest recording. The file is written atomically whenever the checkpoint is, and names the run
it belongs to, so a stale sidecar left by another run is recognised and ignored.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnnames.config import ModelConfig, TrainConfig, to_json_dict
from bnnames.diagnostics.probe import Histogram, LayerStats, Probe, WeightStats, probe_at
from bnnames.errors import DiagnosticsError
from bnnames.examples import Source
from bnnames.model import NamesModel
from bnnames.storage.checkpoint import Checkpoint
from bnnames.storage.files import atomic_write_bytes

FORMAT_NAME = "bnnames.diagnostics"
FORMAT_VERSION = 1
LAYER_FIELDS = ("mean", "std", "saturation", "grad_mean", "grad_std")
WEIGHT_FIELDS = ("grad_mean", "grad_std", "grad_to_data", "update_to_data")
MAX_BYTES = 1 << 28  # bounds what a file can make us parse (the deep preset, 101 records: 138 KB)


def sidecar_path(checkpoint: Path) -> Path:
    """bnnames.safetensors -> bnnames.diagnostics.json, beside it."""
    return Path(checkpoint).with_name(checkpoint.name.removesuffix(".safetensors") + ".diagnostics.json")


@dataclass
class Recording:
    """Probes taken every `every` steps of one run (identified by `run`)."""

    every: int
    run: dict[str, Any]  # model config, train config without `steps`, data SHA-256
    steps: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    layer_names: list[str] = field(default_factory=list)
    weight_names: list[str] = field(default_factory=list)
    layer_rows: list[list[list[float | None]]] = field(default_factory=list)  # [record][layer][LAYER_FIELDS]
    weight_rows: list[list[list[float | None]]] = field(default_factory=list)  # [record][weight][WEIGHT_FIELDS]
    first: Probe | None = None  # with histograms
    last: Probe | None = None

    def add(self, probe: Probe) -> None:
        self.layer_names = [layer.name for layer in probe.layers]
        self.weight_names = [w.name for w in probe.weights]
        self.steps.append(probe.step)
        self.lr.append(probe.lr)
        self.loss.append(probe.loss)
        self.layer_rows.append([[_finite(getattr(s, f)) for f in LAYER_FIELDS] for s in probe.layers])
        self.weight_rows.append([[_finite(getattr(w, f)) for f in WEIGHT_FIELDS] for w in probe.weights])
        self.first = self.first or probe
        self.last = probe

    def matches(self, run: dict[str, Any]) -> bool:
        return self.run == run

    def series(self, kind: str, name: str, stat: str) -> list[float | None]:
        """One statistic of one layer ("layer") or weight ("weight") over the recorded steps."""
        names, rows, fields = (
            (self.layer_names, self.layer_rows, LAYER_FIELDS)
            if kind == "layer"
            else (self.weight_names, self.weight_rows, WEIGHT_FIELDS)
        )
        i, j = names.index(name), fields.index(stat)
        return [row[i][j] for row in rows]

    def up_to(self, step: int) -> Recording:
        """The records of steps <= `step` (a resumed run continues from its checkpoint's step)."""
        keep = sum(1 for s in self.steps if s <= step)
        cut = dataclasses.replace(
            self,
            steps=self.steps[:keep],
            lr=self.lr[:keep],
            loss=self.loss[:keep],
            layer_rows=self.layer_rows[:keep],
            weight_rows=self.weight_rows[:keep],
        )
        if cut.last is not None and cut.last.step > step:
            cut.last = None  # its histograms are gone; the next probe becomes the latest
        if cut.first is not None and cut.first.step > step:
            cut.first = None
        return cut


def save_recording(path: Path, recording: Recording) -> None:
    data = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **dataclasses.asdict(recording)}
    try:
        atomic_write_bytes(path, json.dumps(data, allow_nan=False).encode("utf-8"))
    except OSError as err:
        raise DiagnosticsError(f"cannot write diagnostics {path}: {err.strerror or err}") from None


def load_recording(path: Path) -> Recording:
    """Read and validate a sidecar; any problem is one DiagnosticsError line."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise DiagnosticsError(f"{path} is too large to be a bnnames diagnostics file")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise DiagnosticsError(f"cannot read diagnostics {path}: {err}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME or data.get("version") != FORMAT_VERSION:
        raise DiagnosticsError(f"{path} is not a bnnames diagnostics file of version {FORMAT_VERSION}")
    try:
        recording = Recording(
            every=int(data["every"]),
            run=dict(data["run"]),
            steps=[int(s) for s in data["steps"]],
            lr=[float(v) for v in data["lr"]],
            loss=[float(v) for v in data["loss"]],
            layer_names=[str(n) for n in data["layer_names"]],
            weight_names=[str(n) for n in data["weight_names"]],
            layer_rows=_rows(data["layer_rows"], len(data["layer_names"]), len(LAYER_FIELDS)),
            weight_rows=_rows(data["weight_rows"], len(data["weight_names"]), len(WEIGHT_FIELDS)),
            first=_probe(data["first"]),
            last=_probe(data["last"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise DiagnosticsError(f"{path} is not a valid diagnostics file ({type(err).__name__}: {err})") from None
    lengths = {
        len(recording.steps),
        len(recording.lr),
        len(recording.loss),
        len(recording.layer_rows),
        len(recording.weight_rows),
    }
    if len(lengths) != 1:
        raise DiagnosticsError(f"{path} is not a valid diagnostics file (its series have different lengths)")
    return recording


def _rows(rows: Any, width: int, fields: int) -> list[list[list[float | None]]]:
    out = [[[_optional(v) for v in cell] for cell in row] for row in rows]
    if any(len(row) != width or any(len(cell) != fields for cell in row) for row in out):
        raise ValueError("a record has the wrong number of values")
    return out


def _probe(data: Any) -> Probe | None:
    if data is None:
        return None
    layers = [
        LayerStats(
            str(d["name"]),
            *(float(d[f]) for f in LAYER_FIELDS),
            _hist(d["hist"]),
            _hist(d["grad_hist"]),
            _count(d.get("dead")),
            _count(d.get("units")),
        )
        for d in data["layers"]
    ]
    weights = [
        WeightStats(
            str(d["name"]),
            tuple(int(n) for n in d["shape"]),
            float(d["grad_mean"]),
            float(d["grad_std"]),
            _optional(d["grad_to_data"]),
            _optional(d["update_to_data"]),
            _hist(d["grad_hist"]),
        )
        for d in data["weights"]
    ]
    return Probe(int(data["step"]), float(data["lr"]), float(data["loss"]), layers, weights)


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def _count(value: Any) -> int | None:
    return None if value is None else int(value)


def _hist(data: Any) -> Histogram:
    return Histogram([float(c) for c in data["counts"]], float(data["low"]), float(data["high"]))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None  # JSON has no infinities


def run_identity(model_config: ModelConfig, train_config: TrainConfig, data_sha256: str) -> dict[str, Any]:
    """What ties a sidecar to its run: every setting but the total steps, and the data."""
    train = {k: v for k, v in to_json_dict(train_config).items() if k != "steps"}
    return {"model_config": to_json_dict(model_config), "train_config": train, "data_sha256": data_sha256}


class Recorder:
    """Probes a training run every `every` steps and keeps the sidecar in step with the checkpoint.

    Each probe draws its own batch (see `probe_at`): the run is the same with or without diagnostics.
    """

    def __init__(self, path: Path, recording: Recording, examples: Source, config: TrainConfig):
        self.path, self.recording, self.config = path, recording, config
        self.examples = examples  # the training split

    def next_stop(self, step: int) -> int:
        return (step // self.recording.every + 1) * self.recording.every

    def record(self, model: NamesModel, step: int, lr: float) -> None:
        """Probe now if `step` is due (a multiple of `every`, or the run's end) and not yet recorded;
        `lr` is the learning rate of the next step (the update:data ratio's)."""
        due = step % self.recording.every == 0 or step == self.config.steps
        if not due or (self.recording.steps and self.recording.steps[-1] >= step):
            return
        self.recording.add(probe_at(model, self.examples, step, self.config.batch_size, lr))

    def save(self) -> None:
        save_recording(self.path, self.recording)


def open_recorder(
    checkpoint: Path, every: int | None, ckpt: Checkpoint, examples: Source, resume: bool
) -> Recorder | None:
    """The recorder of a run, or None when no diagnostics are wanted.

    A fresh run starts a new recording (replacing an old sidecar at its first save). A resumed
    run continues its sidecar from the checkpoint's step, at the stored interval unless `every`
    gives a new one. A sidecar is never deleted: `diagnose` tells a stale one by its run identity
    and by its last step.
    """
    path = sidecar_path(checkpoint)
    run = run_identity(ckpt.model_config, ckpt.train_config, ckpt.data_sha256)
    recording = None
    if resume and path.exists():
        try:
            stored = load_recording(path)
        except DiagnosticsError:
            stored = None  # unreadable: a new recording replaces it
        if stored is not None and stored.matches(run):
            recording = stored.up_to(ckpt.step)
            every = every or stored.every
    if every is None:
        return None
    recording = recording or Recording(every=every, run=run)
    recording.every = every
    return Recorder(path, recording, examples, ckpt.train_config)
