"""A whole training run: data, model, the loop in segments, periodic saves, resume, final losses.

This is the one library function behind `bnnames train`. It reports through a `Progress`
object and stops cleanly when `should_stop()` turns true (the CLI wires that to Ctrl-C).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from bnnames.config import ModelConfig, TrainConfig, flag, resolve_configs
from bnnames.data import Dataset, load_dataset
from bnnames.diagnostics.recording import open_recorder
from bnnames.download import STANDARD_URL, URL_ENV, fetch_standard_dataset
from bnnames.errors import ConfigError, DataError, TrainingDiverged
from bnnames.evaluate import split_loss
from bnnames.model import BatchNorm, build_model, create_model
from bnnames.runtime import THREADS, num_threads, resolve_device, step_work
from bnnames.storage.checkpoint import Checkpoint, dataset_for, load_checkpoint, save_checkpoint
from bnnames.storage.lock import checkpoint_lock
from bnnames.training.divergence import check_finite, check_loss, kept_message, loss_ceiling, with_kept
from bnnames.training.engines import make_trainer, resolve_engine

DEFAULT_DATA = Path("data/names.txt")
MAX_PARAMETERS = 50_000_000  # 200 MB of weights, as much again of gradients: far past any sensible names model


class Progress(Protocol):
    def start(self, done: int, total: int) -> None: ...
    def update(self, step: int, loss: float, lr: float) -> None: ...
    def note(self, message: str) -> None: ...


@dataclass(frozen=True)
class TrainRequest:
    checkpoint: Path
    data: Path | None = None  # None: the stored path on --resume, else data/names.txt
    preset: str | None = None  # None: "default" (or the checkpoint's settings on --resume)
    overrides: Mapping[str, Any] = field(default_factory=dict)  # ModelConfig / TrainConfig fields
    device: str = "auto"
    overwrite: bool = False
    resume: bool = False
    save_every: int | None = None  # None: only at the end (and when interrupted)
    tensorboard: Path | None = None
    diagnostics_every: int | None = None  # probe every N steps into a sidecar (continued on --resume)


@dataclass(frozen=True)
class TrainResult:
    status: str  # "done", "already complete", "interrupted" or "not started" (stopped before step 1: no file)
    checkpoint: Path
    step: int
    model_config: ModelConfig
    train_config: TrainConfig
    losses: dict[str, float]  # full-split train/val losses with running statistics, when done


@num_threads(THREADS)
def run_training(request: TrainRequest, progress: Progress, should_stop: Callable[[], bool]) -> TrainResult:
    if request.resume and request.overwrite:
        raise ConfigError(
            "--resume and --overwrite contradict each other: --resume continues the checkpoint's run, "
            "--overwrite starts a new run over it; pass one"
        )
    if request.save_every is not None and request.save_every < 1:
        raise ConfigError(f"--save-every must be at least 1 (got {request.save_every})")
    with checkpoint_lock(request.checkpoint, progress.note):  # from the first check to the last write
        return _locked_run(request, progress, should_stop)


def _locked_run(request: TrainRequest, progress: Progress, should_stop: Callable[[], bool]) -> TrainResult:
    """The run, under the checkpoint's lock: what it finds on disk stays true until it is done."""
    existed = os.path.lexists(request.checkpoint)
    if request.resume:
        ckpt = _resume_checkpoint(request, progress)
        if ckpt.complete and ckpt.losses:
            return TrainResult(
                "already complete", request.checkpoint, ckpt.step, ckpt.model_config, ckpt.train_config, ckpt.losses
            )
        dataset = dataset_for(ckpt, request.data)
        if dataset.sha256 != ckpt.data_sha256:
            raise DataError(f"{dataset.path} is not the names file this run was trained on: resume needs the same data")
    else:
        _check_new_checkpoint(request)
        model_config, train_config = resolve_configs(request.preset or "default", dict(request.overrides))
        dataset = _fresh_dataset(request.data, request.checkpoint, train_config.split_seed, model_config.block_size)
        ckpt = _new_checkpoint(dataset, model_config, train_config)
    work = step_work(ckpt.model_config, ckpt.vocab.size, ckpt.train_config.batch_size)
    return _train(ckpt, dataset, request, resolve_device(request.device, work), progress, should_stop, existed)


def _train(
    ckpt: Checkpoint,
    dataset: Dataset,
    request: TrainRequest,
    device: torch.device,
    progress: Progress,
    should_stop: Callable[[], bool],
    existed: bool,
) -> TrainResult:
    """Train in segments of --save-every steps, saving after each; stop (and save) when asked.

    Never saves a diverged state: the loss is checked at every report, the weights before every
    save, so the file on disk is always the last good one (or untouched).
    """
    model = ckpt.model.to(device)
    engine = resolve_engine(ckpt.train_config.engine, model, ckpt.train_config, device)  # stored: resume keeps it
    ckpt = dataclasses.replace(ckpt, train_config=dataclasses.replace(ckpt.train_config, engine=engine))
    config = ckpt.train_config
    generator = torch.Generator().set_state(ckpt.generator_state)
    trainer = make_trainer(model, config, device, progress.note)
    train = dataset.stream("train").to(device)  # gathered batch by batch: memory follows the characters
    saved = ckpt.step if request.resume else None  # the step the file on disk holds for this run
    ceiling = loss_ceiling(dataset.vocab.size)
    report = _reporter(progress, request.tensorboard)

    def on_report(step: int, loss: float, lr: float) -> None:
        check_loss(loss, ceiling, step, lr)
        report(step, loss, lr)

    recorder = open_recorder(request.checkpoint, request.diagnostics_every, ckpt, train, request.resume)
    progress.start(ckpt.step, config.steps)
    step = first = ckpt.step
    if recorder is not None:
        recorder.record(model, step)  # the state at the start: at init for a fresh run
    while True:
        try:
            if step < config.steps:
                end = _segment_end(step, config.steps, request.save_every)
                if recorder is not None:
                    end = min(end, recorder.next_stop(step))  # probes happen between segments
                step = trainer(train, None, generator, step, end, on_report, should_stop=should_stop)
            check_finite(model, step)
        except TrainingDiverged as err:
            raise with_kept(err, kept_message(request.checkpoint, saved, existed)) from None
        ckpt = dataclasses.replace(ckpt, model=model, step=step, generator_state=generator.get_state())
        if recorder is not None:
            recorder.record(model, step)
        stopping = should_stop()  # read once: a signal may arrive at any moment
        if stopping and step == first:  # no step done by this invocation: nothing new to save
            status = "interrupted" if request.resume else "not started"  # (--overwrite: the old file stays)
            return TrainResult(status, request.checkpoint, step, ckpt.model_config, config, {})
        if (step < config.steps and _is_save_point(step, request.save_every)) or stopping:
            save_checkpoint(request.checkpoint, ckpt)
            saved = step
            if recorder is not None:
                recorder.save()  # the sidecar always matches the checkpoint on disk
        if stopping:
            return TrainResult("interrupted", request.checkpoint, step, ckpt.model_config, config, {})
        if step == config.steps:
            break
    model.use_stats("running")
    losses = {"train": split_loss(model, train), "val": split_loss(model, dataset.stream("val").to(device))}
    save_checkpoint(request.checkpoint, dataclasses.replace(ckpt, losses=losses))
    if recorder is not None:
        recorder.save()
    return TrainResult("done", request.checkpoint, step, ckpt.model_config, config, losses)


def _is_save_point(step: int, save_every: int | None) -> bool:
    return save_every is not None and step % save_every == 0


def _segment_end(step: int, total: int, save_every: int | None) -> int:
    """The next multiple of save_every (the next save), or the end of the run."""
    return total if save_every is None else min(total, (step // save_every + 1) * save_every)


def _reporter(progress: Progress, tensorboard: Path | None) -> Callable[[int, float, float], None]:
    if tensorboard is None:
        return progress.update
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install 'bnnames[tensorboard]'") from None
    writer = SummaryWriter(str(tensorboard))

    def report(step: int, loss: float, lr: float) -> None:
        writer.add_scalar("Loss/train", loss, step)  # the reference's tag
        writer.flush()
        progress.update(step, loss, lr)

    return report


def _resume_checkpoint(request: TrainRequest, progress: Progress) -> Checkpoint:
    """The checkpoint to continue; only a new total --steps may differ from its settings."""
    ckpt = load_checkpoint(request.checkpoint)
    if request.preset is not None:
        raise ConfigError("--preset conflicts with --resume: a resumed run keeps the checkpoint's settings")
    for key, value in request.overrides.items():
        if key == "steps":
            continue
        stored = getattr(ckpt.model_config, key, getattr(ckpt.train_config, key, None))
        if value != stored:
            raise ConfigError(
                f"{flag(key)} {value} conflicts with the checkpoint's {stored}: --resume keeps every "
                "setting of the run; only --steps may change"
            )
    steps = request.overrides.get("steps", ckpt.train_config.steps)
    if steps < ckpt.step:
        raise ConfigError(f"--steps {steps} is below the {ckpt.step} steps this checkpoint has done")
    if steps != ckpt.train_config.steps:
        ckpt = dataclasses.replace(ckpt, train_config=dataclasses.replace(ckpt.train_config, steps=steps))
    if steps > ckpt.step:
        ckpt = dataclasses.replace(ckpt, losses={})  # the old final losses no longer describe it
        if _drop_calibration(ckpt.model):
            ckpt = dataclasses.replace(ckpt, calibration={})
            progress.note(
                "the calibrated BatchNorm statistics were dropped (training changes the model): "
                "run `bnnames calibrate` again when training is done"
            )
    return ckpt


def _drop_calibration(model: torch.nn.Module) -> bool:
    """Remove calibrated buffers, which describe the weights before training went on."""
    dropped = False
    for bn in (m for m in model.modules() if isinstance(m, BatchNorm)):
        for name in ("calibrated_mean", f"calibrated_{bn.spread}"):
            if hasattr(bn, name):
                delattr(bn, name)
                dropped = True
        bn.use_calibrated = False
    return dropped


def _check_new_checkpoint(request: TrainRequest) -> None:
    """A new run never replaces a checkpoint unless --overwrite says so (checked under the lock)."""
    if os.path.lexists(request.checkpoint) and not request.overwrite:
        raise ConfigError(
            f"checkpoint {request.checkpoint} already exists: pass --overwrite to replace it, --resume to "
            "continue it, or -c to write elsewhere"
        )


def _fresh_dataset(data: Path | None, checkpoint: Path, split_seed: int, block_size: int) -> Dataset:
    if data is None:
        data = DEFAULT_DATA
        if not data.exists():
            fetch_standard_dataset(data, os.environ.get(URL_ENV, STANDARD_URL))
    if os.path.exists(checkpoint) and os.path.exists(data) and os.path.samefile(checkpoint, data):
        raise ConfigError(f"-c {checkpoint} is the names file itself: choose another checkpoint path")
    return load_dataset(data, split_seed, block_size)


def _new_checkpoint(dataset: Dataset, model_config: ModelConfig, train_config: TrainConfig) -> Checkpoint:
    with torch.device("meta"):  # count first, allocate nothing: a typo like --n-hidden 100000 must not crash
        parameters = sum(p.numel() for p in build_model(model_config, dataset.vocab.size).parameters())
    if parameters > MAX_PARAMETERS:
        raise ConfigError(
            f"this model would have {parameters:,} parameters (at most {MAX_PARAMETERS:,}): "
            "lower --n-hidden, --n-layers, --n-embd or --block-size"
        )
    generator = torch.Generator().manual_seed(train_config.seed)
    model = create_model(model_config, dataset.vocab.size, generator)  # draws the init first
    return Checkpoint(
        model=model,
        model_config=model_config,
        train_config=train_config,
        vocab=dataset.vocab,
        data_path=str(dataset.path.resolve()),
        data_sha256=dataset.sha256,
        step=0,
        generator_state=generator.get_state(),
    )
