"""Through `run_training`: an interrupted and resumed run equals an uninterrupted one, per engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bnnames.config import TrainConfig
from bnnames.errors import ConfigError
from bnnames.storage.checkpoint import load_checkpoint
from bnnames.training.run import TrainRequest, run_training
from tests.helpers import Quiet


@pytest.mark.parametrize("engine", ["eager", "compiled", "reference"])
def test_interrupt_and_resume_equal_one_run(names_path: Path, tmp_path: Path, engine: str) -> None:
    settings = {"steps": 300, "decay_at": 150, "engine": engine}
    whole = TrainRequest(
        checkpoint=tmp_path / "whole.safetensors", data=names_path, overrides=settings, save_every=100, device="cpu"
    )
    assert run_training(whole, Quiet(), should_stop=lambda: False).status == "done"

    split = TrainRequest(
        checkpoint=tmp_path / "split.safetensors", data=names_path, overrides=settings, save_every=100, device="cpu"
    )
    asked = []  # Ctrl-C mid-segment: every loop asks once per step
    first = run_training(split, Quiet(), should_stop=lambda: asked.append(1) or len(asked) > 133)
    assert first.status == "interrupted" and 100 < first.step < 300 and first.step % 100 != 0
    resumed = TrainRequest(checkpoint=split.checkpoint, resume=True, device="cpu")
    assert run_training(resumed, Quiet(), should_stop=lambda: False).status == "done"

    a, b = load_file(whole.checkpoint), load_file(split.checkpoint)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(split.checkpoint).train_config.engine == engine


def test_auto_is_resolved_once_and_stored(names_path: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BNNAMES_CACHE_DIR", str(tmp_path / "empty cache"))  # a cached step would make auto compile
    request = TrainRequest(checkpoint=tmp_path / "c.safetensors", data=names_path, overrides={"steps": 50})
    assert run_training(request, Quiet(), should_stop=lambda: False).train_config.engine == "eager"  # a short run
    assert load_checkpoint(request.checkpoint).train_config.engine == "eager"


def test_library_callers_get_the_same_choice_check() -> None:
    """The CLI refuses a bad choice through Typer (exit 2); the config refuses it for library callers."""
    with pytest.raises(ConfigError, match="unknown --engine 'warp': choose one of auto, compiled, eager, reference"):
        TrainConfig(engine="warp")
