"""Where and how a command computes: the device and the intra-op thread count for one piece of work
(restored afterwards: library callers keep theirs).

`--device auto` picks the CPU unless CUDA is there and a training step is big enough for the GPU to
pay (`GPU_MIN_WORK`, measured: docs/gpu.md). A run on CUDA uses deterministic kernels only, so that
it resumes bit-identical, as a CPU run does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bnnames.config import Device, ModelConfig, check_choice
from bnnames.errors import ConfigError
from bnnames.model import build_model

# Every bnnames workload is made of small ops (a training step is ~2.4 MFLOP; eval and sampling
# run a few thousand distinct contexts), where a second thread only adds synchronisation, and much
# more of it when another process holds the other core (docs/performance.md).
THREADS = 1

# Multiply-adds of one training step's forward pass (see step_work) from which CUDA trains faster
# than one CPU thread: below it a step is dozens of tiny kernels whose launches cost more than the
# CPU's arithmetic, so every preset (at most 4.0M) stays on the CPU (measured: docs/gpu.md).
GPU_MIN_WORK = 5_000_000

# cuBLAS picks a deterministic reduction order only with a fixed workspace, read when CUDA starts
CUBLAS_WORKSPACE = ":4096:8"


@contextmanager
def num_threads(count: int) -> Iterator[None]:
    """Run the block (or decorated function) with `count` intra-op threads, then restore the caller's."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def step_work(config: ModelConfig, vocab_size: int, batch_size: int) -> int:
    """Multiply-adds of one forward pass over a mini-batch (the backward pass does about twice as
    many): the size of a training step, counted on the meta device, so nothing is allocated."""
    with torch.device("meta"):
        model = build_model(config, vocab_size)
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(batch_size, config.block_size, dtype=torch.long))
    return counter.get_total_flops() // 2


def choose_device(name: str, work: int, cuda: bool, mps: bool) -> str:
    """The rule, given which accelerators exist: `auto` is CUDA for a step of at least GPU_MIN_WORK
    multiply-adds, else the CPU (MPS is not measured: only asked for by name); a named one must exist."""
    check_choice("device", name, Device)
    if name == "auto":
        return "cuda" if cuda and work >= GPU_MIN_WORK else "cpu"
    if not {"cpu": True, "cuda": cuda, "mps": mps}[name]:
        raise ConfigError(f"--device {name} is not available on this machine: use --device auto or cpu")
    return name


def resolve_device(name: str, work: Callable[[], int] | None = None) -> torch.device:
    """The device for a command; `work` counts a training step's multiply-adds (step_work), called
    only where the choice depends on it (auto, with CUDA present): the count's first call costs
    most of a second of imports. The verbs that only run a trained model (eval, sample, calibrate,
    diagnose) pass none: `auto` keeps them on the CPU."""
    cuda = torch.cuda.is_available()
    amount = work() if work is not None and name == "auto" and cuda else 0
    device = torch.device(choose_device(name, amount, cuda, torch.backends.mps.is_available()))
    if device.type == "cuda":
        deterministic_cuda()
    return device


def deterministic_cuda() -> None:
    """Deterministic kernels from here on (no atomics in index_add_ or the embedding's gradient:
    sorted reductions instead), so a CUDA run resumes bit-identical. The cuBLAS setting must be in
    the environment before cuBLAS starts; an op with no deterministic kernel raises, not drifts."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)


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
