"""The optimisation loop: mini-batch SGD with the reference's step-decayed learning rate.

No printing and no saving here: the loop reports through a callback and stops when asked,
so the same function serves the CLI, the tests and the benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from bnnames.config import TrainConfig
from bnnames.examples import Source, as_examples
from bnnames.model import NamesModel
from bnnames.training.divergence import check_loss

# on_report(step, loss, lr) is called after `step` steps are done, every `report_every` steps
Reporter = Callable[[int, float, float], None]


def train_steps(
    model: NamesModel,
    x: torch.Tensor | Source,  # (N, block_size) training contexts on the model's device, or a stream
    y: torch.Tensor | None,  # (N,) next-character targets; None with a stream
    config: TrainConfig,
    generator: torch.Generator,  # CPU generator: draws each mini-batch, its state is resumable
    start: int,
    stop: int,
    on_report: Reporter | None = None,
    report_every: int = 100,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Run steps [start, stop) and return how many steps are done (less if asked to stop).

    Each step consumes the generator exactly as the reference loop does (one `randint` of
    `batch_size` indices), then once per Dropout layer (see `bnnames.model.Dropout`), so a run
    resumed from a saved step and generator state is bit-identical to one that never stopped.
    Weight decay is decoupled (SGDW): `p -= lr * weight_decay * p` before the gradient step,
    on `model.decayed_parameters()` only; at 0 nothing of it runs.
    """
    examples = as_examples(x, y)
    n = len(examples)  # read once: a stream's length is a tensor element
    model.train()
    params = list(model.parameters())
    decayed = model.decayed_parameters() if config.weight_decay else []
    step = start
    while step < stop and not should_stop():
        ix = torch.randint(0, n, (config.batch_size,), generator=generator).to(examples.device)
        xb, yb = examples.gather(ix)  # (B, block_size), (B,): the rows x[ix], y[ix]
        logits = model(xb, generator)  # (B, vocab); the generator draws the dropout masks
        loss = F.cross_entropy(logits, yb)
        for p in params:
            p.grad = None
        loss.backward()
        lr = config.lr_at(step)
        with torch.no_grad():
            for p in decayed:
                p -= lr * config.weight_decay * p
            for p in params:
                p += -lr * p.grad  # the reference's `p.data += -lr * p.grad`, same rounding
        step += 1
        if step % report_every == 0 or step == stop:
            report(loss.item(), step, lr, on_report)
    return step


def report(value: float, step: int, lr: float, on_report: Reporter | None) -> None:
    """Stop a diverged run (a non-finite loss), else pass the loss on."""
    check_loss(value, math.inf, step, lr)
    if on_report is not None:
        on_report(step, value, lr)
