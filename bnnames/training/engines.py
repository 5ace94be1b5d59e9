"""Which training loop runs a model: the compiled fast step, the eager fast step, or the reference.

- "compiled": the hand-derived step (bnnames.training.fast) compiled ahead of time into a native
  library, kept in the user's cache (CPU only; the first run of a model needs a C++ compiler, and
  falls back to "eager", saying so, without one);
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
from bnnames.training.fast.compiled import cached_package
from bnnames.training.fast.engine import FastTrainer
from bnnames.training.fast.plan import Plan, plan_of, state_of
from bnnames.training.loop import train_steps

# trainer(x, y, generator, start, stop, on_report=None, report_every=100, should_stop=...) -> steps done, as train_steps
Trainer = Callable[..., int]


def resolve_engine(
    engine: str,
    model: NamesModel,
    config: TrainConfig,
    device: torch.device,
    examples: int | None = None,
    block_size: int | None = None,
) -> str:
    """The concrete engine for "auto": the fastest one that covers the model and pays off.

    The compiled step pays off whenever its package is already in the cache (loading it takes
    milliseconds), else only for a run long enough to repay a first compile (COMPILE_MIN_STEPS;
    docs/performance.md). Under the plateau schedule --steps is a ceiling and the run's length
    follows the data, so a run on fewer than COMPILE_MIN_STEPS training `examples` is not expected
    to be long. The cache is asked only when `block_size` (the model's context) is given.
    """
    if engine != "auto":
        return engine
    plan = plan_of(model)
    if plan is None:
        return "reference"
    if device.type != "cpu":
        return "eager"
    long_run = config.steps >= COMPILE_MIN_STEPS
    if config.schedule == "plateau" and examples is not None:
        long_run = long_run and examples >= COMPILE_MIN_STEPS
    cached = block_size is not None and _is_cached(model, plan, config, block_size)
    return "compiled" if long_run or cached else "eager"


def _is_cached(model: NamesModel, plan: Plan, config: TrainConfig, block_size: int) -> bool:
    """Whether the compile cache holds this model's step (asked with a batch of the step's shapes)."""
    params, buffers = state_of(model)
    ctx = torch.zeros((config.batch_size, block_size), dtype=torch.long)
    target = torch.zeros(config.batch_size, dtype=torch.long)
    keeps = [torch.zeros((config.batch_size, spec.width), dtype=torch.bool) for spec in plan.dropouts]
    return cached_package(plan, params, buffers, (ctx, target, keeps), config.weight_decay) is not None


def make_trainer(
    model: NamesModel, config: TrainConfig, device: torch.device, note: Callable[[str], None] = lambda message: None
) -> Trainer:
    """The training loop for `model` as `config.engine` asks; `note` hears about a fallback."""
    engine = resolve_engine(config.engine, model, config, device)
    if engine == "reference":

        def reference(x, y, generator, start, stop, on_report=None, report_every=100, should_stop=lambda: False):  # type: ignore
            return train_steps(model, x, y, config, generator, start, stop, on_report, report_every, should_stop)

        return reference
    plan = plan_of(model)
    if plan is None:
        raise ConfigError(f"--engine {engine} does not cover this architecture: use --engine auto or reference")
    if engine == "compiled" and device.type != "cpu":
        raise ConfigError(f"--engine compiled runs on the CPU only, not {device.type}: use --engine auto or eager")
    return FastTrainer(model, plan, config, compiled=engine == "compiled", note=note)
