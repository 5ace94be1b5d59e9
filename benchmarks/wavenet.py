"""(7) The wavenet preset on the hand-derived step: speed against the reference loop, and agreement.

In one process, paired: µs per step of the reference autograd loop, the eager and the compiled
hand-derived step, alternated round by round; and the largest difference between the compiled
step's losses and the reference's over the first 1,000 steps (issue 10: within 1e-4).
"""

from __future__ import annotations

import dataclasses
import statistics

import torch

from benchmarks.measure import Figure, seconds
from benchmarks.step import runner
from bnnames.config import preset
from bnnames.data import load_dataset
from bnnames.model import create_model
from bnnames.runtime import THREADS, num_threads
from bnnames.training.engines import make_trainer

ENGINES = ("reference", "eager", "compiled")
STEPS = {"reference": 100, "eager": 150, "compiled": 400}  # per round: each about 0.1 s


def wavenet_figures(data: str, rounds: int) -> list[Figure]:
    model_config, train_config = preset("wavenet")
    dataset = load_dataset(data, train_config.split_seed, model_config.block_size)
    x, y = dataset.examples("train")
    runs, losses = {}, {}
    for name in ENGINES:
        config = dataclasses.replace(train_config, engine=name)
        generator = torch.Generator().manual_seed(config.seed)
        model = create_model(model_config, dataset.vocab.size, generator)
        losses[name] = []
        trainer = make_trainer(model, config, torch.device("cpu"))
        runs[name] = runner(trainer, x, y, generator, lambda step, loss, lr, out=losses[name]: out.append(loss))
    us: dict[str, list[float]] = {name: [] for name in ENGINES}
    with num_threads(THREADS):
        first_call = seconds(lambda: runs["compiled"](8, report_every=1))  # compiles, or loads the compiled package
        for name in ("reference", "eager"):
            runs[name](8, report_every=1)
        for name in ENGINES:  # the first 1,000 steps of each, reported one by one
            runs[name](992, report_every=1)
        for _ in range(rounds):
            for name in ENGINES:
                us[name].append(seconds(lambda run=runs[name], n=STEPS[name]: run(n)) / STEPS[name] * 1e6)
    gap = max(abs(a - b) for a, b in zip(losses["compiled"][:1000], losses["reference"][:1000]))
    ref = us["reference"]
    figures = []
    for name in ("compiled", "eager"):
        what = f"wavenet preset step, {name}"
        figures.append(
            Figure.of(what, "µs/step", us[name], baseline="reference loop", baseline_median=statistics.median(ref))
        )
        ratios = [r / f for r, f in zip(ref, us[name])]
        figures.append(Figure.of(f"speed-up of the wavenet {name} step over the reference loop (paired)", "x", ratios))
    figures.append(Figure.of("wavenet: largest |compiled - reference| loss, steps 1-1,000", "nats", [gap]))
    figures.append(Figure.of("wavenet: first compiled call in the benchmark process", "s", [first_call]))
    return figures
