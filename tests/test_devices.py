"""`--device auto`: the rule behind it (a pure function, tested without a GPU) and its inputs."""

from __future__ import annotations

import pytest
import torch

from bnnames.config import ModelConfig, PresetName, choices, preset, resolve_configs
from bnnames.errors import ConfigError
from bnnames.runtime import GPU_MIN_WORK, choose_device, resolve_device, step_work
from tests.helpers import fail_with

VOCAB = 27
EVERY = {"cuda": True, "mps": True}  # a machine with every accelerator


def test_step_work_counts_the_forward_multiply_adds_by_hand():
    m = ModelConfig()  # context 3 x 10 -> 200 -> 27, batch 32
    assert step_work(m, VOCAB, 32) == 32 * (3 * 10 * 200 + 200 * 27)
    wavenet, _ = preset("wavenet")  # pairs merged: 4 rows of 2*24 -> 128, 2 of 256 -> 128, 1 of 256 -> 128, 128 -> 27
    assert step_work(wavenet, VOCAB, 32) == 32 * (4 * 48 * 128 + 2 * 256 * 128 + 256 * 128 + 128 * VOCAB)


@pytest.mark.parametrize("name", [n for n in choices(PresetName) if n != "best"])
def test_every_preset_trains_on_the_cpu_under_auto_even_with_a_gpu(name):
    model, train = preset(name)
    work = step_work(model, VOCAB, train.batch_size)
    assert work < GPU_MIN_WORK  # measured: each preset trains faster on one CPU thread than on an H100
    assert choose_device("auto", work, **EVERY) == "cpu"


def test_the_best_preset_is_large_enough_for_cuda_under_auto():
    model, train = preset("best")  # 12x the wavenet preset's multiply-adds per step
    work = step_work(model, VOCAB, train.batch_size)
    assert work == 32 * (4 * 160 * 448 + 2 * 896 * 448 + 896 * 448 + 448 * VOCAB) >= GPU_MIN_WORK
    assert choose_device("auto", work, **EVERY) == "cuda"
    assert choose_device("auto", work, cuda=False, mps=False) == "cpu"


def test_a_large_step_trains_on_cuda_under_auto_when_there_is_one():
    model, train = resolve_configs("default", {"n_hidden": 1024, "batch_size": 4096})
    work = step_work(model, VOCAB, train.batch_size)
    assert work >= GPU_MIN_WORK
    assert choose_device("auto", work, cuda=True, mps=False) == "cuda"
    assert choose_device("auto", work, cuda=False, mps=True) == "cpu"  # MPS is not measured: only by name
    assert choose_device("auto", work, cuda=False, mps=False) == "cpu"
    assert choose_device("auto", GPU_MIN_WORK - 1, cuda=True, mps=False) == "cpu"  # the edge
    assert choose_device("auto", GPU_MIN_WORK, cuda=True, mps=False) == "cuda"


def test_a_named_device_is_forced_or_refused():
    for name in ("cpu", "cuda", "mps"):
        assert choose_device(name, 0, **EVERY) == name
        assert choose_device(name, 10**12, **EVERY) == name
    assert choose_device("cpu", 10**12, cuda=False, mps=False) == "cpu"
    for name in ("cuda", "mps"):
        with pytest.raises(ConfigError, match=f"--device {name} is not available on this machine"):
            choose_device(name, 0, cuda=False, mps=False)
    with pytest.raises(ConfigError, match="unknown --device 'tpu'"):
        choose_device("tpu", 0, **EVERY)


def test_without_work_auto_is_the_cpu():
    """eval, sample, calibrate and diagnose pass no work: auto keeps them on the CPU, GPU or not."""
    assert resolve_device("auto") == torch.device("cpu")


def test_the_work_is_counted_only_when_the_choice_depends_on_it():
    """Counting costs most of a second of imports: a named device, or auto without CUDA, skips it."""
    counted = []

    def work() -> int:
        counted.append(True)
        return 10**12

    assert resolve_device("cpu", work) == torch.device("cpu")
    assert counted == []
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto", work).type == expected
    assert counted == ([True] if torch.cuda.is_available() else [])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_a_missing_gpu_is_one_line(tmp_path, small_names):
    fail_with(
        "train",
        small_names,
        "-c",
        tmp_path / "c.safetensors",
        "--steps",
        "5",
        "--device",
        "cuda",
        fragments=("--device cuda is not available on this machine",),
    )
    assert not (tmp_path / "c.safetensors").exists()
