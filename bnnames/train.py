"""A whole training run: data, model, the loop in segments, periodic saves, resume, final losses.

This is the one library function behind `bnnames train`. It reports through a `Progress`
object and stops cleanly when `should_stop()` turns true (the CLI wires that to Ctrl-C).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import torch

from bnnames.config import ModelConfig, TrainConfig, flag, resolve_configs
from bnnames.data import Dataset, load_dataset
from bnnames.diagnostics.recording import open_recorder
from bnnames.download import STANDARD_URL, URL_ENV, fetch_standard_dataset
from bnnames.errors import ConfigError, DataError, TrainingDiverged
from bnnames.evaluate import split_loss
from bnnames.model import build_model, create_model
from bnnames.runtime import THREADS, num_threads, resolve_device, step_work
from bnnames.schedule import Curve, Point, run_lr, trainer_config
from bnnames.storage.checkpoint import Checkpoint, dataset_for, load_checkpoint, save_checkpoint
from bnnames.storage.lock import checkpoint_lock
from bnnames.training.divergence import check_finite, check_loss, kept_message, loss_ceiling, with_kept
from bnnames.training.engines import make_trainer, resolve_engine
from bnnames.training.history import HistoryRecorder
from bnnames.training.validation import Validator, preview

DEFAULT_DATA = Path("data/names.txt")
MAX_PARAMETERS = 50_000_000  # 200 MB of weights, as much again of gradients: far past any sensible names model


class Progress(Protocol):
    def start(self, done: int, total: int) -> None: ...
    def update(self, step: int, loss: float, lr: float) -> None: ...
    def evaluated(self, point: Point, best: Point) -> None: ...
    def samples(self, step: int, names: list[tuple[str, str]]) -> None: ...  # (name, "train"|"val/test"|"new")
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
    """Train in segments of --save-every steps, saving after each; stop (and save) when asked.

    Segments also end at every evaluation (--eval-every), diagnostics probe and sample preview,
    which all happen between segments, so every engine runs them the same way; the plateau
    schedule decays the lr or ends the run right after an evaluation.

    Never saves a diverged state: the loss is checked at every report, the weights before every
    save, so the file on disk is always the last good one (or untouched).
    """
    model = ckpt.model.to(device)
    train = dataset.stream("train").to(device)  # gathered batch by batch: memory follows the characters
    engine = resolve_engine(ckpt.train_config.engine, model, ckpt.train_config, device, len(train))  # stored
    every = ckpt.train_config.eval_interval(len(train))  # stored: resume evaluates at the same steps
    config = dataclasses.replace(ckpt.train_config, engine=engine, eval_every=every)
    ckpt = dataclasses.replace(ckpt, train_config=config)
    generator = torch.Generator().set_state(ckpt.generator_state)
    trainer = make_trainer(model, trainer_config(config, ckpt.curve), device, progress.note)
    validator = Validator(every, dataset.stream("val").to(device), ckpt.curve, ckpt.best_model)
    history = HistoryRecorder(ckpt.history, config.steps, dataset.stream("val").to(device))
    saved = ckpt.step if request.resume else None  # the step the file on disk holds for this run
    ceiling = loss_ceiling(dataset.vocab.size)
    progress = _with_tensorboard(progress, request.tensorboard)

    def on_report(step: int, loss: float, lr: float) -> None:
        check_loss(loss, ceiling, step, lr)
        validator.reported(step, loss)
        history.reported(step, loss)
        progress.update(step, loss, lr)

    recorder = open_recorder(request.checkpoint, request.diagnostics_every, ckpt, train, request.resume)
    progress.start(ckpt.step, config.steps)
    step = first = ckpt.step
    if recorder is not None:
        recorder.record(model, step, run_lr(config, ckpt.curve, step))  # at init for a fresh run
    while True:
        try:
            if step < config.steps:
                stops = [_segment_end(step, config.steps, request.save_every), _next_multiple(step, every)]
                stops += [history.next_stop(step)]
                stops += [recorder.next_stop(step)] if recorder is not None else []
                stops += [_next_multiple(step, request.sample_every)] if request.sample_every else []
                step = trainer(train, None, generator, step, min(stops), on_report, should_stop=should_stop)
            check_finite(model, step)
        except TrainingDiverged as err:
            raise with_kept(err, kept_message(request.checkpoint, saved, existed)) from None
        if step > first and (validator.due(step) or step == config.steps):  # between segments: every engine
            if validator.evaluate(model, step, config) == "decay":  # from the best weights, at lr * decay
                model.load_state_dict(validator.best.state_dict())  # in place: the trainers keep their tensors
                trainer = make_trainer(model, trainer_config(config, validator.curve), device, progress.note)
            progress.evaluated(validator.curve.points[-1], validator.curve.best)
        history.record(model, step, validator.curve)  # after the evaluation: its val loss is reused
        if request.sample_every and step % request.sample_every == 0 and step > first:
            progress.samples(step, preview(model, dataset, step, device))
        curve = validator.curve
        ckpt = dataclasses.replace(
            ckpt,
            model=model,
            step=step,
            generator_state=generator.get_state(),
            curve=curve,
            best_model=validator.best,
            history=history.state(),
        )
        if recorder is not None:
            recorder.record(model, step, run_lr(config, curve, step))  # the plateau's lr too
        stopping = should_stop()  # read once: a signal may arrive at any moment
        if stopping and step == first:  # no step done by this invocation: nothing new to save
            status = "interrupted" if request.resume else "not started"  # (--overwrite: the old file stays)
            return _result(status, request, ckpt)
        if (step < config.steps and not curve.stopped and _is_save_point(step, request.save_every)) or stopping:
            save_checkpoint(request.checkpoint, ckpt)
            saved = step
            if recorder is not None:
                recorder.save()  # the sidecar always matches the checkpoint on disk
        if stopping:
            return _result("interrupted", request, ckpt)
        if step == config.steps or curve.stopped:
            break
    model.use_stats("running")
    losses = {"train": split_loss(model, train), "val": validator.loss(model)}
    ckpt = dataclasses.replace(ckpt, losses=losses)
    save_checkpoint(request.checkpoint, ckpt)
    if recorder is not None:
        recorder.save()
    return _result("done", request, ckpt)


def _result(status: str, request: TrainRequest, ckpt: Checkpoint) -> TrainResult:
    losses = ckpt.losses if status in ("done", "already complete") else {}
    return TrainResult(status, request.checkpoint, ckpt.step, ckpt.model_config, ckpt.train_config, losses, ckpt.curve)


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


def _is_save_point(step: int, save_every: int | None) -> bool:
    return save_every is not None and step % save_every == 0


def _segment_end(step: int, total: int, save_every: int | None) -> int:
    """The next multiple of save_every (the next save), or the end of the run."""
    return total if save_every is None else min(total, (step // save_every + 1) * save_every)


def _with_tensorboard(progress: Progress, tensorboard: Path | None) -> Progress:
    """`progress`, also logging Loss/train and Loss/val to a TensorBoard folder when one is given."""
    if tensorboard is None:
        return progress
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install 'bnnames[tensorboard]'") from None
    return _TensorBoard(progress, SummaryWriter(str(tensorboard)))


class _TensorBoard:
    def __init__(self, progress: Progress, writer: Any) -> None:
        self.progress, self.writer = progress, writer
        self.start, self.samples, self.note = progress.start, progress.samples, progress.note

    def update(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("Loss/train", loss, step)  # the reference's tag
        self.writer.flush()
        self.progress.update(step, loss, lr)

    def evaluated(self, point: Point, best: Point) -> None:
        self.writer.add_scalar("Loss/val", point.val, point.step)
        self.writer.flush()
        self.progress.evaluated(point, best)


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
