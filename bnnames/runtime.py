"""Where and how a command computes: the device (`auto` prefers CUDA, then MPS, then the CPU) and
the intra-op thread count for one piece of work (restored afterwards: library callers keep theirs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from bnnames.config import Device, check_choice
from bnnames.errors import ConfigError

# Every bnnames workload is made of small ops (a training step is ~2.4 MFLOP; eval and sampling
# run a few thousand distinct contexts). Measured on 2 cores: a second thread made the training
# step, eval and sampling slower, and many times slower while another process used the other core.
THREADS = 1


@contextmanager
def num_threads(count: int) -> Iterator[None]:
    """Run the block (or decorated function) with `count` intra-op threads, then restore the caller's."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(name: str) -> torch.device:
    check_choice("device", name, Device)
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


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes the kernel can give a new allocation without swapping (MemAvailable); None where unknown."""
    try:
        text = meminfo.read_text()
    except OSError:
        return None  # not Linux
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "MemAvailable" and value.split() and value.split()[0].isdigit():
            return int(value.split()[0]) * 1024  # the kernel counts in kB
    return None
