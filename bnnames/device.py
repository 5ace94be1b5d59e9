"""Pick where tensors live: `auto` prefers CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import torch

from bnnames.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise ConfigError(f"unknown --device {name!r}: choose one of {', '.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available[name]:
        raise ConfigError(f"--device {name} is not available on this machine: use --device auto or cpu")
    return torch.device(name)
