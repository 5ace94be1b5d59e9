"""Validation while training (issue 8): evaluations that leave the run alone, the best weights,
the plateau schedule, sample previews, format 2 beside version 1 files, the loss curve."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from bnnames.config import resolve_configs
from bnnames.data import load_dataset
from bnnames.errors import ConfigError
from bnnames.evaluate import split_loss
from bnnames.history import is_log_step
from bnnames.storage.checkpoint import BEST_PREFIX, load_checkpoint
from bnnames.training.run import TrainRequest, run_training
from tests.helpers import Quiet, assert_same_run, cli, fail_with, interrupt_after

MODEL = {"n_hidden": 16, "n_embd": 4}
FIXED = {**MODEL, "steps": 400, "decay_at": 250}  # a decay step: the fixed schedule
PLATEAU = {**MODEL, "steps": 20_000, "eval_every": 50, "patience": 3}  # decays, then stops, well before 20k


@pytest.fixture(scope="module")
def names(tmp_path_factory, names_path) -> Path:
    """600 names of the standard file: 480 to train on, 60 in val."""
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(names_path.read_text().split()[::53][:600]) + "\n")
    return path


def train(path: Path, data: Path | None, stop_at: int | None = None, progress: Quiet | None = None, **options):
    """One in-process run (fresh when `data` is given, else --resume), stopped right after step `stop_at`."""
    stop: list[bool] = []
    undo = interrupt_after(stop_at, lambda: stop.append(True)) if stop_at is not None else (lambda: None)
    sample_every = options.pop("sample_every", None)
    request = TrainRequest(
        checkpoint=path, data=data, overrides=options, resume=data is None, save_every=100, sample_every=sample_every
    )
    try:
        return run_training(request, progress or Quiet(), should_stop=lambda: bool(stop))
    finally:
        undo()


def assert_same_watch(a, b) -> None:
    """The same curve, schedule state and best weights, bit for bit."""
    assert a.curve == b.curve
    sa, sb = a.best_model.state_dict(), b.best_model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("engine", ["reference", "eager"])
def test_evaluating_and_sampling_leave_the_run_unchanged(names, tmp_path, engine):
    """Every tensor and the generator state are the same whatever --eval-every and --sample-every."""
    often = train(tmp_path / "often.safetensors", names, engine=engine, eval_every=30, sample_every=70, **FIXED)
    rarely = train(tmp_path / "rarely.safetensors", names, engine=engine, eval_every=1000, **FIXED)
    assert len(often.curve.points) == 14 and len(rarely.curve.points) == 1  # every 30 steps and at the end
    a, b = load_checkpoint(tmp_path / "often.safetensors"), load_checkpoint(tmp_path / "rarely.safetensors")
    assert_same_run(a, dataclasses.replace(b, train_config=a.train_config))  # all but the stored --eval-every


def test_the_best_weights_are_those_of_the_best_evaluation(names, tmp_path):
    """A run whose ceiling is the best step ends with, as its last weights, the first run's best ones
    (the plateau schedule stops `patience` evaluations after a best, so the best is not the last step)."""
    first = load_checkpoint(train(tmp_path / "a.safetensors", names, **PLATEAU).checkpoint)
    best = first.curve.best
    assert first.best_model is not None and best.step < first.step
    assert best.val == min(p.val for p in first.curve.points)
    short = train(tmp_path / "b.safetensors", names, **{**PLATEAU, "steps": best.step})
    sa, sb = first.best_model.state_dict(), load_checkpoint(short.checkpoint).model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sb)
    x, y = load_dataset(names, 42, 3).examples("val")
    assert split_loss(first.best_model, x, y) == best.val  # the stored value, measured again
    best_eval = json.loads(cli("eval", "-c", tmp_path / "a.safetensors", "--json").stdout)
    last_eval = json.loads(cli("eval", "-c", tmp_path / "a.safetensors", "--json", "--weights", "last").stdout)
    assert (best_eval["loss"], last_eval["loss"]) == (best.val, first.curve.points[-1].val)


def test_the_plateau_schedule_decays_once_then_stops(names, tmp_path):
    result = train(tmp_path / "c.safetensors", names, **PLATEAU)
    curve = result.curve
    assert result.status == "done" and curve.stopped and curve.decayed_at is not None
    assert result.step < 20_000 and result.step == curve.points[-1].step
    for p in curve.points:  # the lr of the step before each evaluation
        assert p.lr == pytest.approx(0.1 if p.step <= curve.decayed_at else 0.01)
    before = [p for p in curve.points if p.step <= curve.decayed_at]
    best_before = min(before, key=lambda p: p.val)
    assert curve.decayed_at == best_before.step + 3 * 50  # three evaluations without a new best
    assert load_checkpoint(result.checkpoint).complete
    again = train(tmp_path / "c.safetensors", None, steps=30_000)  # a plateau-ended run stays ended
    assert again.status == "already complete" and again.step == result.step
    said = cli("train", "--resume", "-c", tmp_path / "c.safetensors").stderr
    assert f"stopped at a val plateau at step {result.step:,}: nothing to do" in said


def test_the_decay_restarts_from_the_best_weights(names, tmp_path):
    """At the plateau the run goes back to its best weights (and BatchNorm buffers) and goes on at lr * decay."""
    decayed_at = train(tmp_path / "whole.safetensors", names, **PLATEAU).curve.decayed_at
    ckpt = load_checkpoint(train(tmp_path / "c.safetensors", names, stop_at=decayed_at, **PLATEAU).checkpoint)
    assert ckpt.step == ckpt.curve.decayed_at == decayed_at and ckpt.curve.best.step < decayed_at
    best, last = ckpt.best_model.state_dict(), ckpt.model.state_dict()
    assert best.keys() == last.keys() and all(torch.equal(best[k], last[k]) for k in best)


@pytest.mark.parametrize("where", ["before the decay", "after the decay"])
def test_interrupted_and_resumed_equals_one_run_with_evaluation_and_samples(names, tmp_path, where):
    whole = train(tmp_path / "whole.safetensors", names, sample_every=70, **PLATEAU)
    at = whole.curve.decayed_at + (-37 if where == "before the decay" else 61)
    first = train(tmp_path / "split.safetensors", names, stop_at=at, sample_every=70, **PLATEAU)
    assert first.status == "interrupted" and first.step == at
    assert train(tmp_path / "split.safetensors", None, sample_every=70).status == "done"
    a, b = load_checkpoint(tmp_path / "whole.safetensors"), load_checkpoint(tmp_path / "split.safetensors")
    assert_same_run(a, b)
    assert_same_watch(a, b)


def test_samples_are_shown_and_marked(names, tmp_path):
    progress = Quiet()
    train(tmp_path / "c.safetensors", names, progress=progress, sample_every=100, **FIXED)
    assert [step for step, _ in progress.shown] == [100, 200, 300, 400]
    dataset = load_dataset(names, 42, 3)
    held_out = set(dataset.splits.val + dataset.splits.test)
    for _, shown in progress.shown:
        assert len(shown) == 5
        for name, mark in shown:
            expected = "train" if name in dataset.splits.train else "val/test" if name in held_out else "new"
            assert mark == expected
    assert any(mark == "new" for _, shown in progress.shown for _, mark in shown)


def test_train_says_the_best_and_the_last_val(names, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = cli("train", names, "--n-hidden", "16", "--n-embd", "4", "--steps", "300", "--sample-every", "150")
    ckpt = load_checkpoint(tmp_path / "bnnames.safetensors")
    best, last = ckpt.curve.best, ckpt.curve.points[-1]
    assert f"best val {best.val:.4f} at step {best.step:,}" in out.stdout
    assert f"last val {last.val:.4f}" in out.stdout and "ran to --steps" in out.stdout
    assert "step 150 samples: " in out.stderr and f"val {last.val:.4f}" not in out.stderr.splitlines()[0]
    assert ckpt.train_config.eval_every == 100  # auto: 480 names are about 100 batches of 32


NEW_KNOBS = ("schedule", "eval_every", "patience")  # TrainConfig fields that version 1 files do not have


def version_1(source: Path, target: Path) -> None:
    """The file today's main writes: no `curve` metadata, no best weights, format_version 1."""
    with safe_open(str(source), framework="pt") as handle:
        meta = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys() if not k.startswith(BEST_PREFIX)}
    del meta["curve"]
    train_config = {k: v for k, v in json.loads(meta["train_config"]).items() if k not in NEW_KNOBS}
    save_file(tensors, str(target), {**meta, "format_version": "1", "train_config": json.dumps(train_config)})


def test_version_1_checkpoints_still_load_and_use_their_last_weights(names, tmp_path):
    train(tmp_path / "v2.safetensors", names, eval_every=50, **FIXED)
    path = tmp_path / "v1.safetensors"
    version_1(tmp_path / "v2.safetensors", path)
    old, new = load_checkpoint(path), load_checkpoint(tmp_path / "v2.safetensors")
    assert old.best_model is None and old.curve.points == ()
    assert old.train_config.schedule == "fixed"  # what every version 1 run used
    assert_same_run(old, dataclasses.replace(new, train_config=old.train_config))
    default = json.loads(cli("eval", "-c", path, "--json").stdout)
    assert default["loss"] == new.curve.points[-1].val  # the last weights
    fail_with("eval", "-c", path, "--weights", "best", fragments=("keeps no best weights", "--weights last"))
    cli("sample", "-c", path, "-n", "3")
    cli("calibrate", "-c", path)
    assert load_checkpoint(path).model.has_calibration()
    cli("train", "--resume", "-c", path, "--steps", "500")  # continues with its fixed schedule, now evaluating
    resumed = load_checkpoint(path)
    assert resumed.step == 500 and resumed.curve.points[-1].step == 500 and resumed.best_model is not None


def test_calibrate_calibrates_the_chosen_weights_only(names, tmp_path):
    path = train(tmp_path / "c.safetensors", names, eval_every=50, **FIXED).checkpoint
    cli("calibrate", "-c", path)
    ckpt = load_checkpoint(path)
    assert ckpt.best_model.has_calibration() and not ckpt.model.has_calibration()
    assert ckpt.calibration["weights"] == "best"


def test_calibrated_best_weights_are_dropped_on_resume_and_the_run_goes_on_exactly(names, tmp_path):
    """calibrate writes into the best weights; resuming past the decay (which reloads them) must not trip on it."""
    whole = train(tmp_path / "whole.safetensors", names, **PLATEAU)
    at = whole.curve.decayed_at - 37
    split = train(tmp_path / "split.safetensors", names, stop_at=at, **PLATEAU).checkpoint
    cli("calibrate", "-c", split)
    progress = Quiet()
    assert train(split, None, progress=progress).status == "done"
    assert any("calibrated BatchNorm statistics were dropped" in n for n in progress.notes)
    a, b = load_checkpoint(tmp_path / "whole.safetensors"), load_checkpoint(split)
    assert not b.best_model.has_calibration() and b.calibration == {}
    assert_same_run(a, b)
    assert_same_watch(a, b)


def test_a_decay_step_asks_for_the_fixed_schedule():
    assert resolve_configs("default", {})[1].schedule == "plateau"
    assert resolve_configs("default", {"decay_at": 500})[1].schedule == "fixed"
    assert resolve_configs("default", {"decay_at": 500, "schedule": "plateau"})[1].schedule == "plateau"
    assert resolve_configs("lecture", {})[1] == dataclasses.replace(resolve_configs("default", {})[1], schedule="fixed")


def test_bad_values_are_one_line_or_a_usage_error(names, tmp_path):
    fail_with("train", names, "-c", tmp_path / "c", "--patience", "0", fragments=("--patience must be between 1",))
    for args in (("train", names, "--schedule", "cosine"), ("eval", "--weights", "middle")):
        assert "is not one of" in cli(*args, code=2).stderr
    assert "greater than or equal to" in cli("train", names, "--sample-every", "0", code=2).stderr
    with pytest.raises(ConfigError, match="--sample-every must be at least 1"):
        train(tmp_path / "c", names, sample_every=0)


def test_the_loss_curve_plot(names, tmp_path):
    path = train(tmp_path / "c.safetensors", names, **PLATEAU).checkpoint
    cli("diagnose", "-c", path, "--out", tmp_path / "plots")
    png = (tmp_path / "plots" / "loss_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (720, 288)  # 10 x 4 inches at 72 dpi


def test_tensorboard_gets_the_val_loss(names, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    request = TrainRequest(
        checkpoint=tmp_path / "c.safetensors",
        data=names,
        overrides={**FIXED, "eval_every": 100},
        tensorboard=tmp_path / "tb",
    )
    run_training(request, Quiet(), should_stop=lambda: False)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    val = [(e.step, e.value) for e in events.Scalars("Loss/val")]
    points = load_checkpoint(request.checkpoint).curve.points
    assert val == [(p.step, pytest.approx(p.val)) for p in points]
    steps = {*range(100, 401, 100), *(s for s in range(1, 401) if is_log_step(s))}  # reports and history points
    assert [e.step for e in events.Scalars("Loss/train")] == sorted(steps)
