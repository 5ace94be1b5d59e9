"""Population statistics for BatchNorm after training ("calibrate the batch norm at the end").

Two estimators:
- "full" (default, the lecture's): the mean and variance of each BatchNorm input over the whole
  training split, layer by layer, each layer measured with the layers before it already
  normalising with their calibrated statistics (what the inference network really computes);
- "paper": Algorithm 2 of Ioffe & Szegedy, steps 8-10: pass training mini-batches of size m
  through the *training* network and set E[x] = mean of the mini-batch means and
  Var[x] = m/(m-1) * mean of the mini-batch variances.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from bnnames.config import Method, check_choice
from bnnames.errors import ConfigError
from bnnames.evaluate import split_loss
from bnnames.examples import ExampleTensors, Source
from bnnames.inference import Folded, count_rows
from bnnames.model import BatchNorm, NamesModel
from bnnames.runtime import THREADS, num_threads, resolve_device
from bnnames.storage.checkpoint import choose_weights, data_note, dataset_for, load_checkpoint, save_checkpoint
from bnnames.storage.lock import checkpoint_lock

CHUNK = 8192  # distinct contexts per pass: their activations (part, T', C) are held in float64, thrice


def calibrate(
    model: NamesModel,
    x: torch.Tensor | Source,  # (N, block_size) training contexts, or the training stream
    method: str = "full",
    batch_size: int = 32,
    generator: torch.Generator | None = None,
) -> int:
    """Store calibrated statistics in every BatchNorm; return how many examples were used."""
    if isinstance(x, torch.Tensor):  # contexts alone: calibration reads no target
        x = ExampleTensors(x, torch.zeros(x.shape[0], dtype=torch.long, device=x.device))
    if method == "full":
        return _calibrate_full(model, x)
    return _calibrate_paper(model, x, batch_size, generator)


@torch.inference_mode()
def _calibrate_full(model: NamesModel, examples: Source) -> int:
    model.eval()
    model.use_stats("running")
    contexts, counts = count_rows(examples, targets=False)  # (U, T), (U,)
    for index, layer in enumerate(model.layers):
        if not layer.running_statistics:
            continue
        prefix = Folded(model.layers[:index])  # the layers before, earlier BatchNorms calibrated and folded
        total = torch.zeros(layer.weight.shape, dtype=torch.float64, device=examples.device)
        total_sq = torch.zeros_like(total)
        for part, weight in zip(contexts.split(CHUNK), counts.double().split(CHUNK)):
            h = prefix(part).double()  # (part, ..., C): each distinct context once...
            h = h.reshape(h.shape[0], -1, h.shape[-1])
            total += (h * weight[:, None, None]).sum((0, 1))  # ...weighted by how often it occurs
            total_sq += (h * h * weight[:, None, None]).sum((0, 1))
        count = len(examples) * h.shape[1]  # values per feature: examples x positions
        mean = total / count
        var = (total_sq - count * mean * mean).clamp_min(0) / (count - 1)  # unbiased, as the lecture's std
        layer.set_calibration(mean.float(), var.float() if layer.spread == "var" else var.sqrt().float())
        layer.use_calibrated = True  # the next layers are measured through this one, calibrated
    return len(examples)


@torch.inference_mode()
def _calibrate_paper(model: NamesModel, examples: Source, m: int, generator: torch.Generator | None) -> int:
    norms = model.batch_norms()
    saved = {id(bn): {k: v.clone() for k, v in bn.named_buffers()} for bn in norms}
    means: dict[int, list[torch.Tensor]] = {id(bn): [] for bn in norms}
    variances: dict[int, list[torch.Tensor]] = {id(bn): [] for bn in norms}

    def record(bn: BatchNorm, inputs: tuple[torch.Tensor]) -> None:
        h = inputs[0].reshape(-1, inputs[0].shape[-1])
        means[id(bn)].append(h.mean(0).double())
        variances[id(bn)].append(h.var(0).double())  # unbiased: m/(m-1) * the batch variance

    hooks = [bn.register_forward_pre_hook(record) for bn in norms]
    model.train()  # mini-batch statistics, as during training
    order = torch.randperm(len(examples), generator=generator).to(examples.device)  # (N,) int64
    batches = len(examples) // m  # every example at most once; the last partial batch is dropped
    try:
        for b in range(batches):
            model(examples.gather(order[b * m : (b + 1) * m])[0])
    finally:
        for hook in hooks:
            hook.remove()
        for bn in norms:  # the training pass must not move the running estimates
            for name, value in saved[id(bn)].items():
                getattr(bn, name).copy_(value)
        model.eval()
    for bn in norms:
        mean = torch.stack(means[id(bn)]).mean(0)
        var = torch.stack(variances[id(bn)]).mean(0)
        bn.set_calibration(mean.float(), var.float() if bn.spread == "var" else var.sqrt().float())
    model.use_stats("calibrated")
    return batches * m


@dataclass(frozen=True)
class CalibrationReport:
    method: str
    layers: int  # BatchNorm layers calibrated
    examples: int  # training examples the statistics were measured on
    losses: dict[str, dict[str, float]]  # {"running"|"calibrated": {"train": .., "val": ..}}
    notes: tuple[str, ...]  # the lock taken over from a dead run, another names file than the stored one


@num_threads(THREADS)
def calibrate_checkpoint(
    path: Path, method: str, data: Path | None, device: str, weights: str | None = None
) -> CalibrationReport:
    """Calibrate the BatchNorm layers of a checkpoint's best (or `weights`) weights and rewrite it
    atomically in place; the other set of weights is kept as it is."""
    check_choice("method", method, Method)
    notes: list[str] = []
    with checkpoint_lock(path, notes.append):  # rewritten in place: no other run writes it meanwhile
        ckpt = load_checkpoint(path)
        target = resolve_device(device)
        model, chosen = choose_weights(ckpt, weights)
        model = model.to(target)
        if not model.batch_norms():
            norm = ckpt.model_config.norm
            raise ConfigError(f"{path} has no BatchNorm layers (trained with --norm {norm}): nothing to calibrate")
        dataset = dataset_for(ckpt, data)
        examples = {split: dataset.stream(split).to(target) for split in ("train", "val")}
        generator = torch.Generator().manual_seed(ckpt.train_config.seed)  # the paper method's batch order
        used = calibrate(model, examples["train"], method, ckpt.train_config.batch_size, generator)
        losses = {}
        for kind in ("running", "calibrated"):
            model.use_stats(kind)
            losses[kind] = {split: split_loss(model, examples[split]) for split in examples}
        calibration = {"method": method, "examples": used, "data_sha256": dataset.sha256, "weights": chosen}
        replaced = {"best_model": model} if chosen == "best" else {"model": model}
        save_checkpoint(path, dataclasses.replace(ckpt, calibration=calibration, **replaced))
    if note := data_note(ckpt, dataset):
        notes.append(note)
    return CalibrationReport(method, len(model.batch_norms()), used, losses, tuple(notes))
