"""(3) Eval of the full training split and (4) sampling 10,000 names, against the naive ways."""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.measure import Figure, seconds
from bnnames.config import SampleConfig
from bnnames.data import BOUNDARY
from bnnames.evaluate import split_loss
from bnnames.model import NamesModel
from bnnames.runtime import THREADS, num_threads
from bnnames.sample import sample_names
from bnnames.storage.checkpoint import dataset_for, load_checkpoint


@torch.inference_mode()
def naive_loss(model: NamesModel, x: torch.Tensor, y: torch.Tensor) -> float:
    """The lecture's way: the whole split through the layer-by-layer model at once."""
    model.eval()
    return F.cross_entropy(model(x), y).item()


@torch.inference_mode()
def makemore_names(model: NamesModel, count: int, block_size: int, generator: torch.Generator) -> int:
    """The lecture's way: one name at a time, one character per forward pass."""
    model.eval()
    for _ in range(count):
        context = [BOUNDARY] * block_size
        while True:
            probs = F.softmax(model(torch.tensor([context])), dim=1)
            ix = torch.multinomial(probs, num_samples=1, generator=generator).item()
            context = context[1:] + [ix]
            if ix == BOUNDARY:
                break
    return count


def inference_figures(checkpoint: Path, rounds: int) -> list[Figure]:
    ckpt = load_checkpoint(checkpoint)
    model = ckpt.model
    model.use_stats("running")
    x, y = dataset_for(ckpt, None).examples("train")
    times: dict[str, list[float]] = {"ours1": [], "ours2": [], "naive": []}
    for _ in range(rounds):  # alternated, so a busy moment hits all three
        for key, threads, fn in (("ours1", THREADS, split_loss), ("ours2", 2, split_loss), ("naive", 2, naive_loss)):
            with num_threads(threads):
                times[key].append(seconds(lambda fn=fn: fn(model, x, y)) * 1e3)
    naive = statistics.median(times["naive"])
    two = Figure.of("bnnames, 2 threads", "ms", times["ours2"])
    what = f"eval of the full train split ({x.shape[0]:,} examples), compute"
    note = f"bnnames with 2 threads: {two.median:.1f} ms ({two.low:.1f}-{two.high:.1f})"
    baseline = "whole split layer by layer, 2 threads"
    figures = [Figure.of(what, "ms", times["ours1"], baseline=baseline, baseline_median=naive, note=note)]
    config = SampleConfig(count=10_000, seed=1)
    rates, slow = [], []
    with num_threads(THREADS):
        for r in range(rounds):
            generator = torch.Generator().manual_seed(r)
            rates.append(10_000 / seconds(lambda g=generator: sample_names(model, ckpt.vocab, 3, config, g)))
            slow.append(200 / seconds(lambda g=generator: makemore_names(model, 200, 3, g)))
    baseline = "one name at a time (200 names)"
    figures.append(
        Figure.of(
            "sampling 10,000 names, compute",
            "names/s",
            rates,
            baseline=baseline,
            baseline_median=statistics.median(slow),
        )
    )
    return figures
