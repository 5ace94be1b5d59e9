"""A whole training run: data, model, the loop in segments, resume, final losses.

This is the one library function behind `bnnames train`. It reports through a `Progress`
object and stops cleanly when `should_stop()` turns true (the CLI wires that to Ctrl-C).
What happens between segments (validation, previews, diagnostics, TensorBoard, saves) is a
list of hooks (`bnnames.training.hooks`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from bnnames.config import ModelConfig, TrainConfig, flag, resolve_configs
from bnnames.data import Dataset, load_dataset
from bnnames.diagnostics.recording import Recorder, open_recorder
from bnnames.download import STANDARD_URL, URL_ENV, fetch_standard_dataset
from bnnames.errors import ConfigError, DataError, TrainingDiverged
from bnnames.evaluate import split_loss
from bnnames.model import build_model, create_model
from bnnames.runtime import THREADS, num_threads, resolve_device, step_work
from bnnames.schedule import Curve, run_lr, trainer_config
from bnnames.storage.checkpoint import Checkpoint, dataset_for, load_checkpoint
from bnnames.storage.lock import checkpoint_lock
from bnnames.training import hooks
from bnnames.training.divergence import check_finite, check_loss, kept_message, loss_ceiling, with_kept
from bnnames.training.engines import make_trainer, resolve_engine
from bnnames.training.history import HistoryRecorder
from bnnames.training.hooks import Progress, Run
from bnnames.training.validation import Validator

DEFAULT_DATA = Path("data/names.txt")
MAX_PARAMETERS = 50_000_000  # 200 MB of weights, as much again of gradients: far past any sensible names model


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
    sample_every: int | None = None  # show a few names every N steps (their own generator: the run is unchanged)


@dataclass(frozen=True)
class TrainResult:
    status: str  # "done", "already complete", "interrupted" or "not started" (stopped before step 1: no file)
    checkpoint: Path
    step: int
    model_config: ModelConfig
    train_config: TrainConfig
    losses: dict[str, float]  # full-split train/val losses with running statistics, when done
    curve: Curve  # the evaluations; curve.best is the step whose weights `eval` and `sample` use
    resumed_at: int | None = None  # the step a --resume continued from (None: a new run)


@num_threads(THREADS)
def run_training(request: TrainRequest, progress: Progress, should_stop: Callable[[], bool]) -> TrainResult:
    if request.resume and request.overwrite:
        raise ConfigError(
            "--resume and --overwrite contradict each other: --resume continues the checkpoint's run, "
            "--overwrite starts a new run over it; pass one"
        )
    for name in ("save_every", "sample_every"):
        value = getattr(request, name)
        if value is not None and value < 1:
            raise ConfigError(f"{flag(name)} must be at least 1 (got {value})")
    with checkpoint_lock(request.checkpoint, progress.note):  # from the first check to the last write
        return _locked_run(request, progress, should_stop)


def _locked_run(request: TrainRequest, progress: Progress, should_stop: Callable[[], bool]) -> TrainResult:
    """The run, under the checkpoint's lock: what it finds on disk stays true until it is done."""
    existed = os.path.lexists(request.checkpoint)
    if request.resume:
        ckpt = _resume_checkpoint(request, progress)
        if ckpt.complete and ckpt.losses:
            return _result("already complete", request, ckpt)
        dataset = dataset_for(ckpt, request.data)
        if dataset.sha256 != ckpt.data_sha256:
            raise DataError(f"{dataset.path} is not the names file this run was trained on: resume needs the same data")
    else:
        _check_new_checkpoint(request)
        model_config, train_config = resolve_configs(request.preset or "default", dict(request.overrides))
        dataset = _fresh_dataset(request.data, request.checkpoint, train_config.split_seed, model_config.block_size)
        ckpt = _new_checkpoint(dataset, model_config, train_config)
    work = partial(step_work, ckpt.model_config, ckpt.vocab.size, ckpt.train_config.batch_size)
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
    """Train in segments, each ending where a hook needs to act (`hooks.nearest_stop`); stop
    (and save) when asked.

    Never saves a diverged state: the loss is checked at every report, the weights before every
    stop, so the file on disk is always the last good one (or untouched).
    """
    model = ckpt.model.to(device)
    train = dataset.stream("train").to(device)  # gathered batch by batch: memory follows the characters
    engine = resolve_engine(  # stored
        ckpt.train_config.engine, model, ckpt.train_config, device, len(train), ckpt.model_config.block_size
    )
    every = ckpt.train_config.eval_interval(len(train))  # stored: resume evaluates at the same steps
    config = dataclasses.replace(ckpt.train_config, engine=engine, eval_every=every)
    ckpt = dataclasses.replace(ckpt, train_config=config)
    generator = torch.Generator().set_state(ckpt.generator_state)
    trainer = make_trainer(model, trainer_config(config, ckpt.curve), device, progress.note)
    validator = Validator(every, dataset.stream("val").to(device), ckpt.curve, ckpt.best_model)
    recorder = open_recorder(request.checkpoint, request.diagnostics_every, ckpt, train, request.resume)
    run = Run(request.checkpoint, ckpt, model, generator, recorder, progress, ckpt.step, ckpt.step)
    run.saved = ckpt.step if request.resume else None
    between = _hooks(request, ckpt, validator, recorder, dataset, device)
    ceiling = loss_ceiling(dataset.vocab.size)

    def on_report(step: int, loss: float, lr: float) -> None:
        check_loss(loss, ceiling, step, lr)
        for hook in between:
            hook.reported(step, loss, lr)
        progress.update(step, loss, lr)

    progress.start(run.step, run.total)
    if recorder is not None:
        recorder.record(model, run.step, run_lr(config, ckpt.curve, run.step))  # at init for a fresh run
    while True:
        try:
            if run.step < run.total:
                stop = hooks.nearest_stop(run.step, run.total, between)
                run.step = trainer(train, None, generator, run.step, stop, on_report, should_stop=should_stop)
            check_finite(model, run.step)
        except TrainingDiverged as err:
            raise with_kept(err, kept_message(request.checkpoint, run.saved, existed)) from None
        run.stopping = should_stop()  # read once: a signal may arrive at any moment
        if run.stopping and run.step == run.first:  # no step done by this invocation: nothing new to save
            status = "interrupted" if request.resume else "not started"  # (--overwrite: the old file stays)
            return _result(status, request, run.ckpt, run.first)
        for hook in between:
            hook.at_stop(run)
        if run.stopping:
            return _result("interrupted", request, run.ckpt, run.first)
        if run.decayed:  # from the best weights, at lr * decay
            trainer = make_trainer(model, trainer_config(config, validator.curve), device, progress.note)
            run.decayed = False
        if run.step == run.total or run.ckpt.curve.stopped:
            break
    model.use_stats("running")
    losses = {"train": split_loss(model, train), "val": validator.loss(model)}
    run.ckpt = dataclasses.replace(run.ckpt, losses=losses)
    run.save()
    return _result("done", request, run.ckpt, run.first)


def _hooks(
    request: TrainRequest,
    ckpt: Checkpoint,
    validator: Validator,
    recorder: Recorder | None,
    dataset: Dataset,
    device: torch.device,
) -> list[hooks.Hook]:
    """What the run does between segments, in the order it does it: validation first (the
    others see its decision and best weights), saving last (it saves what the others left)."""
    history, total = ckpt.history, ckpt.train_config.steps
    between: list[hooks.Hook] = [hooks.Validation(validator), HistoryRecorder(history, total, validator)]
    if request.sample_every:
        between.append(hooks.Preview(request.sample_every, dataset, device))
    if recorder is not None:
        between.append(hooks.Diagnostics(recorder))
    if request.tensorboard is not None:
        between.append(hooks.tensorboard(request.tensorboard))
    between.append(hooks.Saving(request.save_every))
    return between


def _result(status: str, request: TrainRequest, ckpt: Checkpoint, first: int = 0) -> TrainResult:
    losses = ckpt.losses if status in ("done", "already complete") else {}
    resumed_at = first if request.resume else None
    config = ckpt.model_config, ckpt.train_config
    return TrainResult(status, request.checkpoint, ckpt.step, *config, losses, ckpt.curve, resumed_at)


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
    if steps > ckpt.step and not ckpt.curve.stopped:  # a run the plateau schedule ended stays ended
        ckpt = dataclasses.replace(ckpt, losses={})  # the old final losses no longer describe it
        weight_sets = [m for m in (ckpt.model, ckpt.best_model) if m is not None]  # calibrate may use either
        dropped = [bn.drop_calibration() for m in weight_sets for bn in m.batch_norms()]  # every one, no short cut
        if any(dropped):
            ckpt = dataclasses.replace(ckpt, calibration={})
            progress.note(
                "the calibrated BatchNorm statistics were dropped (training changes the model): "
                "run `bnnames calibrate` again when training is done"
            )
    return ckpt


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
