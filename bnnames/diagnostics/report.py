"""`diagnose`: the lecture's health statistics of a checkpoint, recorded or measured now.

With a sidecar recorded by `train --diagnostics-every N`, the report holds the statistics over
training and the probes of the first and the latest recording. Without one, it probes the
checkpoint as it is (one training-mode batch) and says that the over-training view needs a
recording.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bnnames.diagnostics.probe import Probe, probe_at
from bnnames.diagnostics.recording import Recording, load_recording, run_identity, sidecar_path
from bnnames.errors import DiagnosticsError
from bnnames.runtime import THREADS, num_threads, resolve_device
from bnnames.schedule import Curve, run_lr, trainer_config
from bnnames.storage.checkpoint import Checkpoint, dataset_for, load_checkpoint


@dataclass(frozen=True)
class DiagnoseReport:
    latest: Probe  # histograms and the table come from this probe
    first: Probe | None  # the earliest recorded probe (at init for a fresh run), when recorded
    recording: Recording | None  # statistics over training
    notes: list[str]
    curve: Curve  # the run's evaluations (train --eval-every), for the loss curve
    decay_at: int | None  # the step of the lr decay, when the run got there


def lr_decay_step(ckpt: Checkpoint) -> int | None:
    """The step from which the run trained at lr * decay (either schedule), if it got there."""
    decay_at = trainer_config(ckpt.train_config, ckpt.curve).decay_at
    return decay_at if decay_at < ckpt.step else None


@num_threads(THREADS)
def diagnose_checkpoint(path: Path, data: Path | None, device: str) -> DiagnoseReport:
    ckpt = load_checkpoint(path)
    notes: list[str] = []
    run = run_identity(ckpt.model_config, ckpt.train_config, ckpt.data_sha256)
    recording = _matching_recording(path, ckpt.step, run, notes)
    if recording is not None and recording.last is not None and recording.last.step == ckpt.step:
        return DiagnoseReport(recording.last, recording.first, recording, notes, ckpt.curve, lr_decay_step(ckpt))
    if recording is not None and recording.steps:
        notes.append(
            f"the recorded diagnostics end at step {recording.steps[-1]:,}, before this checkpoint's "
            f"step {ckpt.step:,}: the tables and histograms show the checkpoint as it is now"
        )
    else:
        notes.append(
            f"no diagnostics were recorded for {path}: showing one training-mode batch at step {ckpt.step:,}. "
            "Train with --diagnostics-every N to see the statistics over training and the update:data ratio"
        )
    first = recording.first if recording is not None else None
    latest = _probe_now(ckpt, data, device)
    return DiagnoseReport(latest, first, recording, notes, ckpt.curve, lr_decay_step(ckpt))


def _probe_now(ckpt: Checkpoint, data: Path | None, device: str) -> Probe:
    """One training-mode batch through the checkpoint's model, drawn as a recorded probe would be."""
    target = resolve_device(device)
    dataset = dataset_for(ckpt, data)
    train = dataset.stream("train").to(target)
    lr = run_lr(ckpt.train_config, ckpt.curve, ckpt.step)  # the plateau's lr too
    return probe_at(ckpt.model.to(target), train, ckpt.step, ckpt.train_config.batch_size, lr)


def _matching_recording(path: Path, step: int, run: dict, notes: list[str]) -> Recording | None:
    """The sidecar of this checkpoint's run, cut to its step; None (with a note) if unusable."""
    sidecar = sidecar_path(path)
    if not sidecar.exists():
        return None
    try:
        recording = load_recording(sidecar)
    except DiagnosticsError as err:
        notes.append(f"ignoring {sidecar}: {err}")
        return None
    if not recording.matches(run):
        notes.append(f"ignoring {sidecar}: it was recorded for another run than {path}")
        return None
    return recording.up_to(step)
