"""Training that diverges: stop with one line, exit 1, and keep the last good checkpoint."""

from __future__ import annotations

import math
import os

import pytest
import torch

from bnnames.config import ModelConfig
from bnnames.errors import TrainingDiverged
from bnnames.model import create_model
from bnnames.storage.checkpoint import load_checkpoint
from bnnames.training.divergence import DIVERGED_FACTOR, check_finite, loss_ceiling
from tests.helpers import TINY, cli, fail_with


def test_a_huge_learning_rate_stops_at_the_first_report_and_writes_nothing(tmp_path, small_names, monkeypatch):
    """--lr 1e6 keeps the loss finite (about 1e6-1e8, measured) but far past any learning model."""
    monkeypatch.chdir(tmp_path)
    fail_with(
        "train",
        small_names,
        *TINY,
        "--lr",
        "1e6",
        fragments=(
            "training diverged: the loss is",
            "at step 2 (lr 1e+06",  # the history's log-spaced points (1, 2, 3, ...) end segments, which report
            "no checkpoint was written",
            "Lower --lr",
        ),
    )
    assert os.listdir(tmp_path) == ["names.txt"]


def test_a_non_finite_loss_is_divergence_too(tmp_path, small_names, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fail_with("train", small_names, *TINY, "--lr", "1e30", fragments=("training diverged", "nan", "no checkpoint"))
    assert not (tmp_path / "bnnames.safetensors").exists()


def test_the_last_good_checkpoint_is_kept(tmp_path, small_names, monkeypatch):
    """lr 0.1 for 200 steps (saved at 100 and 200), then lr 1e5: the file keeps step 200. The first
    report after 200 is at 237, a point of the loss history (bnnames.history)."""
    monkeypatch.chdir(tmp_path)
    schedule = ("--steps", "400", "--decay-at", "200", "--decay", "1e6")
    said = "the last good checkpoint, bnnames.safetensors at step 200, is kept"
    fail_with("train", small_names, *TINY, *schedule, fragments=("at step 237 (lr 100000", said), progress=True)
    kept = load_checkpoint(tmp_path / "bnnames.safetensors")  # loads: every value finite, checks passed
    assert kept.step == 200 and kept.losses == {}
    before = (tmp_path / "bnnames.safetensors").read_bytes()
    fail_with("train", "--resume", fragments=("at step 237", "bnnames.safetensors at step 200, is kept"))
    assert (tmp_path / "bnnames.safetensors").read_bytes() == before  # resuming diverges again, identically
    assert sorted(os.listdir(tmp_path)) == ["bnnames.safetensors", "names.txt"]


def test_overwrite_keeps_the_old_checkpoint_when_the_new_run_diverges_before_its_first_save(
    tmp_path, small_names, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    cli("train", small_names, *TINY)
    before = (tmp_path / "bnnames.safetensors").read_bytes()
    fail_with(
        "train", small_names, *TINY, "--overwrite", "--lr", "1e6", fragments=("bnnames.safetensors was left as it was",)
    )
    assert (tmp_path / "bnnames.safetensors").read_bytes() == before


def test_the_ceiling_is_far_above_a_uniform_guess_and_the_start_of_training():
    assert loss_ceiling(27) == pytest.approx(DIVERGED_FACTOR * math.log(27))
    assert loss_ceiling(27) > 1000 * 3.29  # the loss of a fresh model is ln(27) = 3.30


def test_non_finite_weights_are_caught_before_a_save():
    model = create_model(ModelConfig(n_hidden=4), 5, torch.Generator().manual_seed(0))
    check_finite(model, 10)  # a healthy model passes
    with torch.no_grad():
        model.layers[2].weight[0, 0] = math.inf
    with pytest.raises(TrainingDiverged, match=r"layers\.2\.weight holds non-finite values after step 10"):
        check_finite(model, 10)
