"""The Python API: the one layer every verb calls, for scripts, notebooks and games.

    import bnnames
    model = bnnames.load("bnnames.safetensors")
    model.sample(10, suffix="iel", min_length=5, max_length=9, seed=1)
    model.score(["emma", "zqx"])[0].log_likelihood

`load` does what every verb used to repeat (read the checkpoint, choose weights and BatchNorm
statistics, pick the device); the `Model` it returns samples, ranks, scores and evaluates with
the same code, so the same seed and options give the same names as `bnnames sample`. The names
file is read only where it is needed (`novel`, `evaluate`, `score`'s "in names file").
See docs/python-api.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bnnames.config import ModelConfig, SampleConfig, ScoreSort, Split, SplitChoice, TrainConfig, check_choice, choices
from bnnames.data import Vocab
from bnnames.evaluate import EvalReport, model_losses
from bnnames.export.run import ExportReport, export_model
from bnnames.model import NamesModel
from bnnames.runtime import THREADS, num_threads, resolve_device
from bnnames.sample import SampleReport, sample_model
from bnnames.schedule import Point
from bnnames.score import NameScore, ScoreReport, score_model
from bnnames.storage.checkpoint import Checkpoint, data_note, dataset_for, load_checkpoint, model_in_use
from bnnames.training.run import TrainRequest, run_training

S = SampleConfig()


@dataclass(frozen=True)
class Model:
    """A trained checkpoint, loaded for use: its chosen weights in eval mode, on `device`."""

    path: Path
    checkpoint: Checkpoint = field(repr=False)
    network: NamesModel = field(repr=False)  # the chosen weights, with the chosen statistics
    stats: str  # "running", "calibrated", or "none" for a model without BatchNorm
    device: torch.device
    data: Path | None = None  # a names file instead of the one stored in the checkpoint

    @property
    def vocab(self) -> Vocab:
        """The characters the model knows (`vocab.chars`); id 0 is the boundary token."""
        return self.checkpoint.vocab

    @property
    def config(self) -> ModelConfig:
        return self.checkpoint.model_config

    @property
    def train_config(self) -> TrainConfig:
        return self.checkpoint.train_config

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels a labelled model conditions on; () for a model trained on a plain list."""
        return ()

    def sample(
        self,
        n: int = S.count,
        *,
        seed: int | None = S.seed,
        temperature: float = S.temperature,
        top_k: int | None = S.top_k,
        top_p: float | None = S.top_p,
        prefix: str = S.prefix,
        suffix: str = S.suffix,
        contains: Iterable[str] = S.contains,
        without: Iterable[str] = S.without,
        match: str | None = S.match,
        min_length: int = S.min_length,
        max_length: int = S.max_length,
        unique: bool = S.unique,
        novel: bool = False,
        min_distance: int = S.min_distance,
        like: str | None = S.like,
    ) -> list[str]:
        """`n` names drawn from the model conditioned on every constraint (docs/sampling.md)."""
        config = SampleConfig(
            count=n,
            seed=seed,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            prefix=prefix,
            suffix=suffix,
            contains=tuple(contains),
            without=tuple(without),
            match=match,
            min_length=min_length,
            max_length=max_length,
            unique=unique,
            min_distance=min_distance,
            like=like,
        )
        return [name for batch in self.draw(config, novel).batches for name in batch]

    def ranked(
        self,
        n: int = S.count,
        *,
        prefix: str = S.prefix,
        suffix: str = S.suffix,
        contains: Iterable[str] = S.contains,
        without: Iterable[str] = S.without,
        match: str | None = S.match,
        min_length: int = S.min_length,
        max_length: int = S.max_length,
        novel: bool = False,
        min_distance: int = S.min_distance,
    ) -> list[NameScore]:
        """The `n` most likely names that satisfy every constraint, most likely first, exactly
        (temperature 1), each with its log-likelihood."""
        config = SampleConfig(
            count=n,
            prefix=prefix,
            suffix=suffix,
            contains=tuple(contains),
            without=tuple(without),
            match=match,
            min_length=min_length,
            max_length=max_length,
            min_distance=min_distance,
            ranked=True,
        )
        names = [name for batch in self.draw(config, novel).batches for name in batch]
        return self.score(names)

    @num_threads(THREADS)
    def draw(self, config: SampleConfig, novel: bool = False) -> SampleReport:
        """The names of `config`, streamed batch by batch (what `bnnames sample` writes as it draws)."""
        return sample_model(self.checkpoint, self.network, config, novel, self.data, self.device)

    def score(self, names: Iterable[str]) -> list[NameScore]:
        """Each name's log-likelihood (natural log of P(name, end included)), in the order given."""
        return self.score_report(list(names)).scores

    @num_threads(THREADS)
    def score_report(self, names: list[str], sort: ScoreSort = "input") -> ScoreReport:
        """`score` with its note (the names file's state) and statistics, sorted as asked."""
        return score_model(self.checkpoint, self.network, self.stats, names, self.data, sort)

    def evaluate(self, split: str = "val") -> float:
        """The mean loss in nats per character (end included) on `split`: train, val or test."""
        check_choice("split", split, Split)
        return self.evaluate_report(split).losses[0].loss

    def export(self, out: str | Path, fmt: str | None = None) -> ExportReport:
        """Write the model as `fmt` ("onnx" or "html"; None: from `out`'s suffix), atomically (docs/export.md)."""
        return export_model(self.checkpoint, self.network, self.stats, self.path.stem, Path(out), fmt)

    @num_threads(THREADS)
    def evaluate_report(self, split: str = "all") -> EvalReport:
        """Loss on one split or all three ("all"), with the note of the names file used."""
        check_choice("split", split, SplitChoice)
        dataset = dataset_for(self.checkpoint, self.data)
        splits = choices(Split) if split == "all" else (split,)
        losses = model_losses(self.network, self.stats, dataset, splits, self.device, self.path)
        return EvalReport(losses, data_note(self.checkpoint, dataset))


def load(
    path: str | Path,
    *,
    weights: str | None = None,
    stats: str | None = None,
    device: str = "cpu",
    data: str | Path | None = None,
) -> Model:
    """A checkpoint ready to use: `weights` "best" (the default, when kept) or "last", `stats`
    "calibrated" (the default, when present) or "running", `data` a names file instead of the one
    the checkpoint stores (needed only for `novel`, `evaluate` and "in names file")."""
    path = Path(path)
    checkpoint = load_checkpoint(path)
    network, kind = model_in_use(checkpoint, weights, stats)
    target = resolve_device(device)
    return Model(path, checkpoint, network.to(target).eval(), kind, target, None if data is None else Path(data))


def train(
    data: str | Path | None,
    checkpoint: str | Path = "bnnames.safetensors",
    *,
    preset: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    device: str = "auto",
    save_every: int | None = None,
    on_progress: Callable[[int, float, float], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    **options: Any,
) -> Model:
    """Train as `bnnames train` does (same options, same defaults: `options` are its --model and
    --training knobs by field name, e.g. n_hidden=100, steps=20_000) and load the result.
    `on_progress(step, loss, lr)` hears every report and `on_note(message)` the run's notes
    (a compile, a fallback); nothing is printed."""
    request = TrainRequest(
        Path(checkpoint),
        None if data is None else Path(data),
        preset,
        options,
        device,
        overwrite,
        resume,
        save_every,
    )
    result = run_training(request, _Callbacks(on_progress, on_note), should_stop=lambda: False)
    return load(result.checkpoint, device="cpu" if device == "auto" else device)


class _Callbacks:
    """The run's progress, told to the caller's callbacks only (the API never prints)."""

    def __init__(
        self, on_progress: Callable[[int, float, float], None] | None, on_note: Callable[[str], None] | None
    ) -> None:
        self.on_progress, self.on_note = on_progress, on_note

    def start(self, done: int, total: int) -> None:
        pass

    def update(self, step: int, loss: float, lr: float) -> None:
        if self.on_progress is not None:
            self.on_progress(step, loss, lr)

    def evaluated(self, point: Point, best: Point) -> None:
        pass

    def samples(self, step: int, names: list[tuple[str, str]]) -> None:
        pass

    def note(self, message: str) -> None:
        if self.on_note is not None:
            self.on_note(message)
