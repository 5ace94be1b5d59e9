"""Every command through the CLI, on a small names file with capitals, accents and punctuation."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from bnnames.config import ModelConfig, Norm, PresetName, TrainConfig, choices, flag
from bnnames.history import is_log_step
from bnnames.storage.checkpoint import load_checkpoint
from tests.helpers import BNNAMES, TINY, cli, subprocess_env


@pytest.fixture
def trained(tmp_path, small_names, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    cli("train", small_names, *TINY)
    return tmp_path / "bnnames.safetensors"


def test_train_prints_losses_and_eval_agrees(trained):
    result = cli("eval", "--split", "val", "--stats", "running", "--json")
    report = json.loads(result.stdout)
    assert report["split"] == "val" and report["stats"] == "running" and report["examples"] > 0
    from bnnames.storage.checkpoint import load_checkpoint

    assert abs(report["loss"] - load_checkpoint(trained).losses["val"]) < 1e-9  # what train printed


def test_calibrate_then_eval_uses_calibrated_stats_by_default(trained):
    result = cli("calibrate")
    assert "calibrated 1 BatchNorm layer" in result.stdout
    rows = json.loads(cli("eval", "--split", "all", "--json").stdout)
    assert [r["split"] for r in rows] == ["train", "val", "test"]
    assert {r["stats"] for r in rows} == {"calibrated"}
    assert "bits/char" in cli("eval").stdout
    cli("calibrate", "--method", "paper")


def test_sample_is_repeatable_never_empty_and_uses_only_known_characters(trained, small_names):
    first = cli("sample", "-n", "20", "--seed", "7").stdout.splitlines()
    assert first == cli("sample", "-n", "20", "--seed", "7").stdout.splitlines()
    assert len(first) == 20 and all(first)
    alphabet = set(small_names.read_text(encoding="utf-8"))
    assert set("".join(first)) <= alphabet
    novel = cli("sample", "-n", "5", "--seed", "1", "--novel").stdout.splitlines()
    assert not set(novel) & set(small_names.read_text(encoding="utf-8").split("\n"))
    prefixed = cli(
        "sample",
        "-n",
        "5",
        "--seed",
        "1",
        "--prefix",
        "Ma",
        "--top-k",
        "3",
        "--temperature",
        "0.5",
        "--max-length",
        "8",
    ).stdout.splitlines()
    assert all(name.startswith("Ma") and len(name) <= 8 for name in prefixed)


def test_existing_checkpoint_is_not_replaced_without_overwrite(trained, small_names):
    before = trained.read_bytes()
    result = cli("train", small_names, *TINY, code=1)
    assert "already exists" in result.stderr and "--overwrite" in result.stderr
    assert trained.read_bytes() == before
    cli("train", small_names, *TINY, "--overwrite", "--seed", "3")
    assert trained.read_bytes() != before


def test_resume_continues_to_more_steps_and_reports_a_finished_run(trained):
    assert "nothing to do" in cli("train", "--resume").stderr
    result = cli("train", "--resume", "--steps", "400")
    assert "resumed at step 200, trained 200 more steps in " in result.stdout  # not "trained 400 steps"
    conflict = cli("train", "--resume", "--steps", "500", "--lr", "0.5", code=1)
    assert "--lr 0.5 conflicts" in conflict.stderr


def test_usage_mistakes_give_one_line(trained):
    for args, text in [
        (("sample", "--prefix", "Zz9"), "not in the vocabulary"),
        (("sample", "-n", "0"), "--count must be between"),
        (("sample", "--temperature", "0"), "--temperature must be a positive"),
        (("eval", "-c", "missing.safetensors"), "does not exist"),
    ]:
        result = cli(*args, code=1)
        assert text in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    cli("eval", "--stats", "calibrated", code=1)


def test_batch_size_one_is_refused_with_the_reason(tmp_path, small_names, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("train", small_names, "--batch-size", "1", code=1)
    assert "BatchNorm" in result.stderr
    assert not (tmp_path / "bnnames.safetensors").exists()


def test_version_and_help_show_defaults():
    assert cli("--version").stdout.startswith("bnnames ")
    text = cli("train", "--help").stdout
    for option, default in [("--steps", "200000"), ("--batch-size", "32"), ("--lr", "0.1"), ("--decay-at", "100000")]:
        assert option in text and default in text
    assert "--split" in cli("eval", "--help").stdout and "--top-k" in cli("sample", "--help").stdout


def test_tensorboard_logs_the_reference_tag(tmp_path, small_names, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)
    cli("train", small_names, *TINY, "--tensorboard", tmp_path / "tb")
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    scalars = events.Scalars("Loss/train")
    log_spaced = [s for s in range(1, 201) if is_log_step(s)]  # the history's points end segments, which report
    assert [s.step for s in scalars] == sorted({*log_spaced, 100, 200}) and all(s.value > 0 for s in scalars)


@pytest.mark.parametrize("preset", choices(PresetName))
@pytest.mark.parametrize("norm", choices(Norm))
def test_train_and_eval_report_batch_norm_exactly_when_the_model_has_it(tmp_path, small_names, preset, norm):
    """The claim follows the model that build_model makes (`--preset deep --norm none` has none)."""
    path = tmp_path / f"{preset}-{norm}.safetensors"
    size = ("--n-hidden", "8", "--n-embd", "3", "--steps", "100")
    trained = cli("train", small_names, "-c", path, "--preset", preset, "--norm", norm, *size)
    has_batch_norm = bool(load_checkpoint(path).model.batch_norms())
    assert has_batch_norm == (norm == "batch")
    assert ("running BatchNorm statistics" in trained.stdout) == has_batch_norm
    stats = json.loads(cli("eval", "-c", path, "--json").stdout)["stats"]
    assert stats == ("running" if has_batch_norm else "none")


@pytest.mark.parametrize(
    "args",
    [
        ("eval", "--split", "dev"),
        ("eval", "--stats", "mean"),
        ("calibrate", "--method", "exact"),
        ("train", "--preset", "huge"),
        ("train", "--norm", "group"),
        ("train", "--engine", "warp"),
        ("sample", "--device", "tpu"),
    ],
)
def test_a_bad_choice_is_a_usage_error_that_lists_the_choices(args):
    """Choices are Literal types: Typer refuses them itself (exit 2, like --steps abc)."""
    result = cli(*args, code=2)
    assert "is not one of" in result.stderr and "Traceback" not in result.stderr


def test_every_config_field_is_a_train_option():
    """Each knob is declared once, in bnnames.config; the train verb's options come from there."""
    text = cli("train", "--help").stdout
    for cls in (ModelConfig, TrainConfig):
        for field in dataclasses.fields(cls):
            assert flag(field.name) in text, field.name


def test_sample_into_a_pipe_closed_early_stops_quietly(small_names: Path, tmp_path: Path) -> None:
    """`bnnames sample -n BIG | head -1`: names are streamed, so the reader leaves mid-stream;
    sample stops drawing and exits 0 with nothing on stderr, as Unix tools do."""
    ckpt = tmp_path / "m.safetensors"
    cli("train", small_names, "-c", ckpt, *TINY)
    child = subprocess.Popen(
        [*BNNAMES, "sample", "-c", ckpt, "-n", "2000000", "--seed", "1"],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdout.readline().strip()  # a first name, then the reader leaves
    child.stdout.close()
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert err == b""
