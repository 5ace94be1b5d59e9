"""Which training loop runs a model: the compiled fast step, the eager fast step, or the reference.

- "compiled": the hand-derived step (bnnames.training.fast), several steps per `torch.compile`d call
  (CPU only; it needs a C++ compiler at run time and falls back to "eager", saying so, without);
- "eager": the same hand-derived step without compiling (no start-up cost);
- "reference": `bnnames.training.loop.train_steps`, plain autograd: the readable formulation the fast
  paths are tested against, and the loop for any model the fast step does not cover.

"auto" is resolved once, when a run starts, and stored in the checkpoint, so a resumed run
keeps its path (each path is bit-identical to itself across interruptions, not to the others).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bnnames.config import COMPILE_MIN_STEPS, TrainConfig
from bnnames.errors import ConfigError
from bnnames.model import NamesModel
from bnnames.runtime import THREADS, num_threads
from bnnames.training.fast.engine import FastTrainer
from bnnames.training.fast.plan import plan_of
from bnnames.training.loop import train_steps

# trainer(x, y, generator, start, stop, on_report=None, report_every=100, should_stop=...) -> steps done, as train_steps
Trainer = Callable[..., int]


def resolve_engine(engine: str, model: NamesModel, config: TrainConfig, device: torch.device) -> str:
    """The concrete engine for "auto": the fastest one that covers the model and pays off."""
    if engine != "auto":
        return engine
    if plan_of(model) is None:
        return "reference"
    if device.type == "cpu" and config.steps >= COMPILE_MIN_STEPS:
        return "compiled"  # a compile takes seconds: only a long run repays it
    return "eager"


def make_trainer(
    model: NamesModel, config: TrainConfig, device: torch.device, note: Callable[[str], None] = lambda message: None
) -> Trainer:
    """The training loop for `model` as `config.engine` asks; `note` hears about a fallback."""
    engine = resolve_engine(config.engine, model, config, device)
    if engine == "reference":

        def reference(x, y, generator, start, stop, on_report=None, report_every=100, should_stop=lambda: False):  # type: ignore
            with num_threads(THREADS):
                return train_steps(model, x, y, config, generator, start, stop, on_report, report_every, should_stop)

        return reference
    plan = plan_of(model)
    if plan is None:
        raise ConfigError(f"--engine {engine} does not cover this architecture: use --engine auto or reference")
    if engine == "compiled" and device.type != "cpu":
        raise ConfigError(f"--engine compiled runs on the CPU only, not {device.type}: use --engine auto or eager")
    return FastTrainer(model, plan, config, compiled=engine == "compiled", note=note)
