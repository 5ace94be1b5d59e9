"""The loss history a checkpoint keeps (bnnames.history): log-spaced, exact, resumable, optional."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bnnames.data import load_dataset
from bnnames.errors import CheckpointError
from bnnames.evaluate import split_loss
from bnnames.history import History, HistoryPoint, history_from_json, history_to_json, is_log_step, next_log_step
from bnnames.storage.checkpoint import load_checkpoint, save_checkpoint
from bnnames.training.run import TrainRequest, run_training
from tests.helpers import Quiet, interrupt_after

TINY = {"n_hidden": 8, "n_embd": 3}


def _train(path: Path, data: Path | None, stop_at: int | None = None, **overrides):
    stop: list[bool] = []
    undo = interrupt_after(stop_at, lambda: stop.append(True)) if stop_at is not None else (lambda: None)
    try:
        request = TrainRequest(checkpoint=path, data=data, overrides=overrides, resume=data is None, device="cpu")
        return run_training(request, Quiet(), should_stop=lambda: bool(stop))
    finally:
        undo()


def test_log_steps_are_the_rounded_powers_of_ten_to_the_eighth():
    expected = sorted({round(10 ** (k / 8)) for k in range(60)} - {0})
    expected = [s for s in expected if s <= 100_000]
    assert [s for s in range(1, 100_001) if is_log_step(s)] == expected
    assert expected[:12] == [1, 2, 3, 4, 6, 7, 10, 13, 18, 24, 32, 42]
    assert [next_log_step(s) for s in (0, 1, 5, 99, 100)] == [1, 2, 6, 100, 133]


def test_a_2000_step_run_has_a_real_curve_and_its_val_points_are_exact(tmp_path, names_path):
    path = tmp_path / "c.safetensors"
    _train(path, names_path, steps=2000, **TINY)
    ckpt = load_checkpoint(path)
    points = ckpt.history.points
    steps = [p.step for p in points]
    assert len(points) >= 25 and steps == sorted(steps) and steps[0] == 1 and steps[-1] == 2000
    assert all(is_log_step(s) or s % ckpt.train_config.eval_every == 0 or s == 2000 for s in steps)
    curve = {p.step: p.val for p in ckpt.curve.points}
    assert curve and all(p.val == curve[p.step] for p in points if p.step in curve)  # evaluations reused
    seconds = [p.seconds for p in points]
    assert seconds == sorted(seconds) and ckpt.history.seconds >= seconds[-1]
    # the point at step 1 against a brute-force reference: the model after one step, on the whole val split
    one = tmp_path / "one.safetensors"
    _train(one, names_path, steps=1, **TINY)
    after_one = load_checkpoint(one)
    after_one.model.use_stats("running")
    val = load_dataset(names_path, 42, 3).stream("val")
    assert points[0].val == pytest.approx(split_loss(after_one.model, val), abs=1e-12)
    assert after_one.history.points[0] == dataclasses.replace(points[0], seconds=after_one.history.points[0].seconds)


def test_an_interrupted_run_resumes_with_the_same_history_points(tmp_path, names_path):
    whole, cut = tmp_path / "whole.safetensors", tmp_path / "cut.safetensors"
    _train(whole, names_path, steps=600, eval_every=200, **TINY)
    assert _train(cut, names_path, stop_at=137, steps=600, eval_every=200, **TINY).status == "interrupted"
    assert _train(cut, None).status == "done"
    a, b = load_checkpoint(whole).history, load_checkpoint(cut).history
    assert [(p.step, p.val) for p in a.points] == [(p.step, p.val) for p in b.points]  # the weights are equal


def test_a_checkpoint_without_history_loads_and_a_bad_one_is_refused(tmp_path, names_path):
    path = tmp_path / "c.safetensors"
    _train(path, names_path, steps=50, **TINY)
    ckpt = load_checkpoint(path)
    save_checkpoint(path, dataclasses.replace(ckpt, history=None))  # as bnnames wrote it before histories
    assert load_checkpoint(path).history is None
    history = History((HistoryPoint(1, 3.3, 3.2, 0.01), HistoryPoint(2, None, 3.1, 0.02)), 0.5)
    assert history_from_json(json.loads(json.dumps(history_to_json(history))), 2) == history
    for bad in ({"points": [[3, 1.0, 1.0, 0.0]], "seconds": 1.0}, {"points": [[1, 1.0, "x", 0.0]], "seconds": 1}, []):
        with pytest.raises(CheckpointError):
            history_from_json(bad, 2)
