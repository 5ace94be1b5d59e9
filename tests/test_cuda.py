"""On CUDA (skipped without it): the same losses as the CPU, exact resume, checkpoints that cross
devices. CI has no GPU; these run on a machine with one (docs/gpu.md)."""

from __future__ import annotations

import json

import pytest
import torch

from bnnames.storage.checkpoint import load_checkpoint
from bnnames.training.run import TrainRequest, run_training
from tests.helpers import Quiet, assert_same_run, cli, interrupt_after

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

ENGINES = ["eager", "reference"]  # the hand-derived step (index_add_), autograd (index_put_ accumulate)


def train(path, names, device, stop_at=None, resume=False, **overrides):
    """One in-process run on `device` (a fresh one unless `resume`), stopped after step `stop_at`."""
    stop: list[bool] = []
    undo = interrupt_after(stop_at, lambda: stop.append(True)) if stop_at is not None else (lambda: None)
    try:
        request = TrainRequest(
            checkpoint=path, data=None if resume else names, overrides=overrides, device=device, resume=resume
        )
        return run_training(request, Quiet(), should_stop=lambda: bool(stop))
    finally:
        undo()


@pytest.mark.parametrize("engine", ENGINES)
def test_cuda_gives_the_cpu_losses_over_1000_steps(tmp_path, names_path, engine):
    settings = {"steps": 1000, "decay_at": 500, "engine": engine}
    cpu = train(tmp_path / "cpu.safetensors", names_path, "cpu", **settings)
    cuda = train(tmp_path / "cuda.safetensors", names_path, "cuda", **settings)
    assert cpu.losses.keys() == cuda.losses.keys() == {"train", "val"}
    for split, loss in cpu.losses.items():
        assert cuda.losses[split] == pytest.approx(loss, abs=1e-4), split


@pytest.mark.parametrize("engine", ENGINES)
def test_an_interrupted_cuda_run_resumes_bit_identical(tmp_path, names_path, engine):
    settings = {"steps": 600, "decay_at": 300, "engine": engine}
    whole, part = tmp_path / "whole.safetensors", tmp_path / "part.safetensors"
    assert train(whole, names_path, "cuda", **settings).status == "done"
    assert train(part, names_path, "cuda", stop_at=257, **settings).status == "interrupted"
    assert load_checkpoint(part).step == 257
    assert train(part, names_path, "cuda", resume=True).status == "done"
    assert_same_run(load_checkpoint(part), load_checkpoint(whole))


def test_a_large_step_trains_on_cuda_under_auto_and_resumes_exactly(tmp_path, names_path):
    settings = {"steps": 40, "n_hidden": 1024, "batch_size": 4096}
    whole, part = tmp_path / "whole.safetensors", tmp_path / "part.safetensors"
    train(whole, names_path, "auto", **settings)
    train(part, names_path, "cuda", stop_at=17, **settings)
    train(part, names_path, "auto", resume=True)
    assert_same_run(load_checkpoint(part), load_checkpoint(whole))  # auto ran it on CUDA, as the resume


def test_checkpoints_cross_devices(tmp_path, names_path):
    """Trained on CUDA: the same losses and seeded names on the CPU; trained on the CPU: likewise on CUDA."""
    for trained_on in ("cuda", "cpu"):
        path = tmp_path / f"{trained_on}.safetensors"
        cli("train", names_path, "-c", path, "--steps", "300", "--device", trained_on)
        losses = {
            device: json.loads(cli("eval", "-c", path, "--split", "all", "--json", "--device", device).stdout)
            for device in ("cpu", "cuda")
        }
        for row_cpu, row_cuda in zip(losses["cpu"], losses["cuda"]):
            assert row_cuda["split"] == row_cpu["split"] and row_cuda["loss"] == pytest.approx(
                row_cpu["loss"], abs=1e-5
            )
        names = {
            device: cli("sample", "-c", path, "-n", "50", "--seed", "7", "--device", device).stdout
            for device in ("cpu", "cuda")
        }
        assert names["cpu"] == names["cuda"]
        cli("calibrate", "-c", path, "--device", "cuda")
        assert all(t.device.type == "cpu" for t in load_checkpoint(path).model.state_dict().values())
