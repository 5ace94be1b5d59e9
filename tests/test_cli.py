"""Every command through the CLI, on a small names file with capitals, accents and punctuation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bnnames.cli import make_app

TINY = ["--steps", "300", "--n-hidden", "16", "--n-embd", "4", "--save-every", "100"]


def run(*args: str, code: int = 0):
    result = CliRunner().invoke(make_app(), [str(a) for a in args])
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
    return result


@pytest.fixture
def trained(tmp_path, small_names, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    run("train", small_names, *TINY)
    return tmp_path / "bnnames.safetensors"


def test_train_prints_losses_and_eval_agrees(trained):
    result = run("eval", "--split", "val", "--stats", "running", "--json")
    report = json.loads(result.stdout)
    assert report["split"] == "val" and report["stats"] == "running" and report["examples"] > 0
    from bnnames.checkpoint import load_checkpoint

    assert abs(report["loss"] - load_checkpoint(trained).losses["val"]) < 1e-9  # what train printed


def test_calibrate_then_eval_uses_calibrated_stats_by_default(trained):
    result = run("calibrate")
    assert "calibrated 1 BatchNorm layer" in result.stdout
    rows = json.loads(run("eval", "--split", "all", "--json").stdout)
    assert [r["split"] for r in rows] == ["train", "val", "test"]
    assert {r["stats"] for r in rows} == {"calibrated"}
    assert "bits/char" in run("eval").stdout
    run("calibrate", "--method", "paper")


def test_sample_is_repeatable_never_empty_and_uses_only_known_characters(trained, small_names):
    first = run("sample", "-n", "20", "--seed", "7").stdout.splitlines()
    assert first == run("sample", "-n", "20", "--seed", "7").stdout.splitlines()
    assert len(first) == 20 and all(first)
    alphabet = set(small_names.read_text(encoding="utf-8"))
    assert set("".join(first)) <= alphabet
    novel = run("sample", "-n", "5", "--seed", "1", "--novel").stdout.splitlines()
    assert not set(novel) & set(small_names.read_text(encoding="utf-8").split("\n"))
    prefixed = run("sample", "-n", "5", "--seed", "1", "--prefix", "Ma", "--top-k", "3",
                   "--temperature", "0.5", "--max-length", "8").stdout.splitlines()  # fmt: skip
    assert all(name.startswith("Ma") and len(name) <= 8 for name in prefixed)


def test_existing_checkpoint_is_not_replaced_without_overwrite(trained, small_names):
    before = trained.read_bytes()
    result = run("train", small_names, *TINY, code=1)
    assert "already exists" in result.stderr and "--overwrite" in result.stderr
    assert trained.read_bytes() == before
    run("train", small_names, *TINY, "--overwrite", "--seed", "3")
    assert trained.read_bytes() != before


def test_resume_continues_to_more_steps_and_reports_a_finished_run(trained):
    assert "nothing to do" in run("train", "--resume").stderr
    result = run("train", "--resume", "--steps", "400")
    assert "trained 400 steps" in result.stdout
    conflict = run("train", "--resume", "--steps", "500", "--lr", "0.5", code=1)
    assert "--lr 0.5 conflicts" in conflict.stderr


def test_usage_mistakes_give_one_line(trained):
    for args, text in [
        (("eval", "--split", "dev"), "unknown --split 'dev'"),
        (("sample", "--prefix", "Zz9"), "not in the vocabulary"),
        (("sample", "-n", "0"), "--count must be between"),
        (("sample", "--temperature", "0"), "--temperature must be a positive"),
        (("eval", "-c", "missing.safetensors"), "does not exist"),
    ]:
        result = run(*args, code=1)
        assert text in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    run("eval", "--stats", "calibrated", code=1)


def test_batch_size_one_is_refused_with_the_reason(tmp_path, small_names, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("train", small_names, "--batch-size", "1", code=1)
    assert "BatchNorm" in result.stderr
    assert not (tmp_path / "bnnames.safetensors").exists()


def test_version_and_help_show_defaults():
    assert run("--version").stdout.startswith("bnnames ")
    text = run("train", "--help").stdout
    for flag, default in [("--steps", "200000"), ("--batch-size", "32"), ("--lr", "0.1"), ("--decay-at", "100000")]:
        assert flag in text and default in text
    assert "--split" in run("eval", "--help").stdout and "--top-k" in run("sample", "--help").stdout


def test_tensorboard_logs_the_reference_tag(tmp_path, small_names, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)
    run("train", small_names, *TINY, "--tensorboard", tmp_path / "tb")
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    scalars = events.Scalars("Loss/train")
    assert [s.step for s in scalars] == [100, 200, 300] and all(s.value > 0 for s in scalars)


def test_a_model_without_batch_norm_reports_no_statistics(tmp_path, small_names, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trained = run("train", small_names, *TINY, "--norm", "none")
    assert "(nats)" in trained.stdout and "BatchNorm" not in trained.stdout
    assert json.loads(run("eval", "--json").stdout)["stats"] == "none"
