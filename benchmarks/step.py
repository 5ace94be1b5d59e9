"""(1) The training step: the reference autograd loop against bnnames' fast paths, paired."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable

import torch

from benchmarks.measure import Figure, seconds
from bnnames.config import ModelConfig, TrainConfig
from bnnames.model import create_model
from bnnames.runtime import THREADS, num_threads
from bnnames.training.engines import Trainer, make_trainer
from bnnames.training.loop import Reporter


def _engines(x: torch.Tensor, y: torch.Tensor, vocab: int) -> dict[str, Callable[[int], None]]:
    """name -> run(n): train n more steps of its own model from the default run's start."""
    engines = {}
    for name in ("reference", "eager", "compiled"):
        config = dataclasses.replace(TrainConfig(), engine=name)
        generator = torch.Generator().manual_seed(config.seed)
        model = create_model(ModelConfig(), vocab, generator)
        engines[name] = runner(make_trainer(model, config, torch.device("cpu")), x, y, generator)
    return engines


def runner(
    trainer: Trainer, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, on_report: Reporter | None = None
) -> Callable[..., None]:
    """run(n, report_every=100): train n more steps, reporting losses to `on_report`."""
    done = [0]

    def run(n: int, report_every: int = 100) -> None:
        done[0] = trainer(x, y, generator, done[0], done[0] + n, on_report, report_every=report_every)

    return run


def step_figures(x: torch.Tensor, y: torch.Tensor, vocab: int, rounds: int) -> list[Figure]:
    """µs per step of each engine, timed in alternation (one round = each engine once)."""
    steps = {"reference": 300, "eager": 500, "compiled": 4000}
    us: dict[str, list[float]] = {name: [] for name in steps}
    with num_threads(THREADS):
        engines = _engines(x, y, vocab)
        compile_s = seconds(lambda: engines["compiled"](8))  # the first call compiles (or loads the compiled package)
        for run in engines.values():
            run(64)  # warm up
        for _ in range(rounds):
            for name, run in engines.items():
                us[name].append(seconds(lambda run=run, n=steps[name]: run(n)) / steps[name] * 1e6)
    ref = us["reference"]
    figures = []
    for name in ("compiled", "eager"):
        ratios = [r / f for r, f in zip(ref, us[name])]
        figures.append(
            Figure.of(
                f"training step, {name}",
                "µs/step",
                us[name],
                baseline="reference loop",
                baseline_median=statistics.median(ref),
            )
        )
        figures.append(Figure.of(f"speed-up of {name} over the reference loop (paired)", "x", ratios))
    figures.append(
        Figure.of(
            "first compiled call in the benchmark process",
            "s",
            [compile_s],
            note="compile, or a load of the compiled package from the cache",
        )
    )
    return figures
