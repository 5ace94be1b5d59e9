"""Shared by the fast-path tests: a small training setup on the standard dataset."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from bnnames.config import ModelConfig, TrainConfig
from bnnames.data import load_dataset
from bnnames.model import NamesModel, create_model


def train_split(names_path: Path, block_size: int = 3) -> tuple[torch.Tensor, torch.Tensor, int]:
    dataset = load_dataset(names_path, 42, block_size)
    x, y = dataset.examples("train")
    return x, y, dataset.vocab.size


def fresh(config: ModelConfig, vocab_size: int, seed: int = 2147483647) -> tuple[NamesModel, torch.Generator]:
    """A model drawn as a run draws it, and the generator that then draws its batches."""
    generator = torch.Generator().manual_seed(seed)
    return create_model(config, vocab_size, generator), generator


def record(losses: list[tuple[int, float]]):  # type: ignore[no-untyped-def]
    return lambda step, loss, lr: losses.append((step, loss))


def state(model: NamesModel, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Everything a checkpoint holds, for torch.equal comparisons."""
    return {**{k: v.clone() for k, v in model.state_dict().items()}, "generator": generator.get_state()}


def assert_equal_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


SHORT = dataclasses.replace(TrainConfig(), steps=100, decay_at=60)  # the decay falls inside the run
