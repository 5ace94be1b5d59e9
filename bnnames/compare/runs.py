"""The figures of each checkpoint that `compare` puts side by side, and what is not comparable.

Every number comes from the code its own verb runs: the losses from `checkpoint_losses` (what
`eval` prints: the best weights when kept, on each split, with running and with calibrated
statistics), the health figures from `diagnose_checkpoint` (the recorded probe at the
checkpoint's step, else one training-mode batch of the last weights now), the curve and the
history from the checkpoint itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bnnames.config import Split, choices
from bnnames.diagnostics.probe import Probe
from bnnames.diagnostics.recording import Recording
from bnnames.diagnostics.report import diagnose_checkpoint
from bnnames.errors import ConfigError
from bnnames.evaluate import checkpoint_losses
from bnnames.history import History
from bnnames.runtime import THREADS, num_threads, resolve_device
from bnnames.schedule import Curve
from bnnames.storage.checkpoint import Checkpoint, choose_weights, dataset_for, load_checkpoint

STATS = ("running", "calibrated")


@dataclass(frozen=True)
class Run:
    """One checkpoint's figures; a loss is None where the checkpoint cannot give it."""

    label: str
    path: Path
    ckpt: Checkpoint  # configs, vocabulary, data hash, step, curve
    parameters: int
    weights: str  # "best" or "last": the weights the losses are of
    weights_step: int  # the step of those weights
    losses: dict[str, dict[str, float] | None]  # "running" / "calibrated" -> split -> loss; None: not calibrated
    stats_kind: str  # "batch" when the model has BatchNorm statistics, else "none"
    probe: Probe  # the health figures (last weights, training mode, one batch)
    recorded: bool  # the probe comes from a recording made during training
    recording: Recording | None  # the statistics over training, when recorded

    @property
    def history(self) -> History | None:
        return self.ckpt.history

    @property
    def curve(self) -> Curve:
        return self.ckpt.curve


@dataclass(frozen=True)
class Comparison:
    runs: list[Run]
    warnings: list[str]  # which numbers are not comparable, and why


@num_threads(THREADS)
def compare_checkpoints(paths: Sequence[Path], names: Sequence[str] | None, device: str) -> Comparison:
    """Load every checkpoint first (a missing or corrupt one is one error before any work), then
    measure each."""
    if names and len(names) != len(paths):
        raise ConfigError(f"--name was given {len(names)} times for {len(paths)} checkpoints: give one per checkpoint")
    if len(paths) < 2:
        raise ConfigError("compare needs at least two checkpoints")
    labels = list(names) if names else _labels(paths)
    ckpts = [load_checkpoint(path) for path in paths]
    target = resolve_device(device)
    runs = [_run(label, Path(path), ckpt, target) for label, path, ckpt in zip(labels, paths, ckpts)]
    return Comparison(runs, not_comparable(runs))


def _run(label: str, path: Path, ckpt: Checkpoint, target) -> Run:  # type: ignore[no-untyped-def]
    dataset = dataset_for(ckpt, None)
    model, weights = choose_weights(ckpt)
    has_bn = bool(model.batch_norms())
    losses: dict[str, dict[str, float] | None] = {}
    for stats in STATS if has_bn else ("running",):
        if stats == "calibrated" and not model.has_calibration():
            losses[stats] = None
            continue
        split_losses = checkpoint_losses(ckpt, dataset, choices(Split), stats if has_bn else None, target, path=path)
        losses[stats] = {s.split: s.loss for s in split_losses}
    report = diagnose_checkpoint(path, None, str(target))
    recorded = report.recording is not None and report.latest is report.recording.last
    best = ckpt.curve.best
    return Run(
        label=label,
        path=path,
        ckpt=ckpt,
        parameters=sum(p.numel() for p in ckpt.model.parameters()),
        weights=weights,
        weights_step=best.step if weights == "best" and best is not None else ckpt.step,
        losses=losses,
        stats_kind="batch" if has_bn else "none",
        probe=report.latest,
        recorded=recorded,
        recording=report.recording,
    )


def _labels(paths: Sequence[Path]) -> list[str]:
    """The file stems; a stem that repeats gets its folder too."""
    stems = [Path(p).name.removesuffix(".safetensors") for p in paths]
    return [
        f"{Path(p).parent.name}/{stem}" if stems.count(stem) > 1 else stem for p, stem in zip(paths, stems, strict=True)
    ]


def not_comparable(runs: list[Run]) -> list[str]:
    """One line per run that differs from the first in what its losses are measured on."""
    first, warnings = runs[0], []
    for run in runs[1:]:
        a, b = first.ckpt, run.ckpt
        if a.vocab.chars != b.vocab.chars:
            warnings.append(
                f"{run.label} and {first.label} have different vocabularies ({b.vocab.size} and {a.vocab.size} "
                "symbols): their losses are over different alphabets and are not comparable"
            )
        elif a.data_sha256 != b.data_sha256:
            warnings.append(
                f"{run.label} and {first.label} were trained on different names files: their train, val and "
                "test losses (and curves) are measured on different names and are not comparable"
            )
        elif a.train_config.split_seed != b.train_config.split_seed:
            warnings.append(
                f"{run.label} and {first.label} split the names differently (split seed {b.train_config.split_seed} "
                f"and {a.train_config.split_seed}): their train, val and test losses are not comparable"
            )
    return warnings
