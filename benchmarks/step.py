"""(1) The training step: the reference autograd loop against bnnames' fast paths, paired."""

from __future__ import annotations

import dataclasses

import torch

from benchmarks.measure import Figure, seconds
from bnnames.config import ModelConfig, TrainConfig
from bnnames.fast.engine import FastTrainer
from bnnames.fast.plan import plan_of
from bnnames.model import create_model
from bnnames.threads import THREADS, num_threads
from bnnames.train import train_steps


def _engines(x: torch.Tensor, y: torch.Tensor, vocab: int) -> dict[str, object]:
    """name -> run(n): train n more steps of its own model, as the default run would."""
    config = TrainConfig()
    engines = {}
    for name in ("reference", "eager", "compiled"):
        generator = torch.Generator().manual_seed(config.seed)
        model = create_model(ModelConfig(), vocab, generator)
        if name == "reference":
            trainer = lambda *a, m=model: train_steps(m, *a[:2], config, *a[2:])  # noqa: E731
        else:
            trainer = FastTrainer(model, plan_of(model), config, compiled=name == "compiled")
        engines[name] = _runner(trainer, x, y, generator)
    return engines


def _runner(trainer, x, y, generator):  # type: ignore[no-untyped-def]
    done = [0]

    def run(n: int) -> None:
        done[0] = trainer(x, y, generator, done[0], done[0] + n)

    return run


def step_figures(x: torch.Tensor, y: torch.Tensor, vocab: int, rounds: int) -> list[Figure]:
    """µs per step of each engine, timed in alternation (one round = each engine once)."""
    steps = {"reference": 300, "eager": 500, "compiled": 4000}
    us: dict[str, list[float]] = {name: [] for name in steps}
    with num_threads(THREADS):
        engines = _engines(x, y, vocab)
        compile_s = seconds(lambda: engines["compiled"](8))  # the first call compiles (or loads the cache)
        for name, run in engines.items():
            run(64)  # warm up
        for _ in range(rounds):
            for name, run in engines.items():
                us[name].append(seconds(lambda: run(steps[name])) / steps[name] * 1e6)
    ref = us["reference"]
    figures = []
    for name in ("compiled", "eager"):
        ratios = [r / f for r, f in zip(ref, us[name])]
        fig = Figure.of(f"training step, {name}", "µs/step", us[name], baseline="reference loop",
                        baseline_median=Figure.of("", "", ref).median)  # fmt: skip
        figures.append(fig)
        figures.append(Figure.of(f"speed-up of {name} over the reference loop (paired)", "x", ratios))
    figures.append(Figure.of("first compiled call in the benchmark process", "s", [compile_s],
                             note="compile, or a load from the inductor cache"))  # fmt: skip
    return [dataclasses.replace(f) for f in figures]
