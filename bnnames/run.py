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

from bnnames.checkpoint import Checkpoint, dataset_for, load_checkpoint, save_checkpoint
from bnnames.config import ModelConfig, TrainConfig, flag, resolve_configs
from bnnames.data import Dataset, load_dataset
from bnnames.device import resolve_device
from bnnames.download import STANDARD_URL, URL_ENV, fetch_standard_dataset
from bnnames.engines import make_trainer, resolve_engine
from bnnames.errors import ConfigError, DataError
from bnnames.evaluate import split_loss
from bnnames.model import create_model
from bnnames.threads import THREADS, num_threads

DEFAULT_DATA = Path("data/names.txt")


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


@dataclass(frozen=True)
class TrainResult:
    status: str  # "done", "already complete" or "interrupted"
    checkpoint: Path
    step: int
    model_config: ModelConfig
    train_config: TrainConfig
    losses: dict[str, float]  # full-split train/val losses with running statistics, when done


@num_threads(THREADS)
def run_training(request: TrainRequest, progress: Progress, should_stop: Callable[[], bool]) -> TrainResult:
    device = resolve_device(request.device)
    if request.resume:
        ckpt = _resume_checkpoint(request)
        if ckpt.complete:
            return TrainResult("already complete", request.checkpoint, ckpt.step,
                               ckpt.model_config, ckpt.train_config, ckpt.losses)  # fmt: skip
        dataset = dataset_for(ckpt, request.data)
        if dataset.sha256 != ckpt.data_sha256:
            raise DataError(f"{dataset.path} is not the names file this run was trained on: resume needs the same data")
    else:
        _check_writable(request)
        model_config, train_config = resolve_configs(request.preset or "default", dict(request.overrides))
        dataset = _fresh_dataset(request.data, train_config.split_seed, model_config.block_size)
        ckpt = _new_checkpoint(dataset, model_config, train_config)
    return _train(ckpt, dataset, request, device, progress, should_stop)


def _train(ckpt: Checkpoint, dataset: Dataset, request: TrainRequest, device: torch.device,
           progress: Progress, should_stop: Callable[[], bool]) -> TrainResult:  # fmt: skip
    model = ckpt.model.to(device)
    engine = resolve_engine(ckpt.train_config.engine, model, ckpt.train_config, device)  # stored: resume keeps it
    ckpt = dataclasses.replace(ckpt, train_config=dataclasses.replace(ckpt.train_config, engine=engine))
    config = ckpt.train_config
    generator = torch.Generator().set_state(ckpt.generator_state)
    trainer = make_trainer(model, config, device, progress.note)
    x, y = (t.to(device) for t in dataset.examples("train"))
    on_report = _reporter(progress, request.tensorboard)
    progress.start(ckpt.step, config.steps)
    step = ckpt.step
    while step < config.steps:
        segment_end = config.steps if request.save_every is None else min(
            config.steps, (step // request.save_every + 1) * request.save_every)  # fmt: skip
        step = trainer(x, y, generator, step, segment_end, on_report, should_stop=should_stop)
        ckpt = dataclasses.replace(ckpt, model=model, step=step, generator_state=generator.get_state())
        if step < config.steps:
            save_checkpoint(request.checkpoint, ckpt)
        if should_stop():
            return TrainResult("interrupted", request.checkpoint, step, ckpt.model_config, config, {})
    model.use_stats("running")
    val = (t.to(device) for t in dataset.examples("val"))
    losses = {"train": split_loss(model, x, y), "val": split_loss(model, *val)}
    save_checkpoint(request.checkpoint, dataclasses.replace(ckpt, losses=losses))
    return TrainResult("done", request.checkpoint, step, ckpt.model_config, config, losses)


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


def _resume_checkpoint(request: TrainRequest) -> Checkpoint:
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
    return ckpt


def _check_writable(request: TrainRequest) -> None:
    path = request.checkpoint
    if path.exists() and not request.overwrite:
        raise ConfigError(
            f"checkpoint {path} already exists: pass --overwrite to replace it, --resume to continue it, "
            "or -c to write elsewhere"
        )
    if path.is_dir():
        raise ConfigError(f"checkpoint path {path} is a folder: pass -c with a file name")
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write the checkpoint into {folder}: it is missing or read-only; choose another -c")


def _fresh_dataset(data: Path | None, split_seed: int, block_size: int) -> Dataset:
    if data is None:
        data = DEFAULT_DATA
        if not data.exists():
            fetch_standard_dataset(data, os.environ.get(URL_ENV, STANDARD_URL))
    elif not data.exists():
        raise DataError(f"names file {data} does not exist: pass the path of a text file with one name a line")
    return load_dataset(data, split_seed, block_size)


def _new_checkpoint(dataset: Dataset, model_config: ModelConfig, train_config: TrainConfig) -> Checkpoint:
    generator = torch.Generator().manual_seed(train_config.seed)
    model = create_model(model_config, dataset.vocab.size, generator)  # draws the init first
    return Checkpoint(
        model=model, model_config=model_config, train_config=train_config, vocab=dataset.vocab,
        data_path=str(dataset.path.resolve()), data_sha256=dataset.sha256, step=0,
        generator_state=generator.get_state(),
    )  # fmt: skip
