"""Through `run_training`: an interrupted and resumed run equals an uninterrupted one, per engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bnnames.checkpoint import load_checkpoint
from bnnames.run import TrainRequest, run_training


class Quiet:
    """A Progress that remembers the last step it saw and the notes."""

    def __init__(self) -> None:
        self.step, self.notes = 0, []

    def start(self, done: int, total: int) -> None:
        self.step = done

    def update(self, step: int, loss: float, lr: float) -> None:
        self.step = step

    def note(self, message: str) -> None:
        self.notes.append(message)


@pytest.mark.parametrize("engine", ["eager", "compiled", "reference"])
def test_interrupt_and_resume_equal_one_run(names_path: Path, tmp_path: Path, engine: str) -> None:
    settings = {"steps": 300, "decay_at": 150, "engine": engine}
    whole = TrainRequest(checkpoint=tmp_path / "whole.safetensors", data=names_path, overrides=settings, save_every=100)
    assert run_training(whole, Quiet(), should_stop=lambda: False).status == "done"

    split = TrainRequest(checkpoint=tmp_path / "split.safetensors", data=names_path, overrides=settings, save_every=100)
    asked = []  # Ctrl-C mid-segment: the loops ask once per step (once per 8 compiled steps)
    stop_after = 17 if engine == "compiled" else 133
    first = run_training(split, Quiet(), should_stop=lambda: asked.append(1) or len(asked) > stop_after)
    assert first.status == "interrupted" and 100 < first.step < 300 and first.step % 100 != 0
    resumed = TrainRequest(checkpoint=split.checkpoint, resume=True)
    assert run_training(resumed, Quiet(), should_stop=lambda: False).status == "done"

    a, b = load_file(whole.checkpoint), load_file(split.checkpoint)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(split.checkpoint).train_config.engine == engine


def test_auto_is_resolved_once_and_stored(names_path: Path, tmp_path: Path) -> None:
    request = TrainRequest(checkpoint=tmp_path / "c.safetensors", data=names_path, overrides={"steps": 50})
    assert run_training(request, Quiet(), should_stop=lambda: False).train_config.engine == "eager"  # a short run
    assert load_checkpoint(request.checkpoint).train_config.engine == "eager"


def test_an_unknown_engine_is_a_one_line_error(names_path: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bnnames.cli import make_app

    args = ["train", str(names_path), "--engine", "warp", "-c", str(tmp_path / "c.safetensors")]
    result = CliRunner().invoke(make_app(), args)
    assert result.exit_code == 1
    assert "unknown --engine 'warp': choose one of auto, compiled, eager, reference" in result.output
    assert not (tmp_path / "c.safetensors").exists()
