"""Every verb on every architecture, and `train --diagnostics-every` / `diagnose`, through the CLI."""

from __future__ import annotations

import json
import math
import shutil
import sys

import pytest
import torch

from bnnames.diagnostics.recording import load_recording, sidecar_path
from bnnames.storage.checkpoint import load_checkpoint
from tests.helpers import assert_one_line_error, cli

SHAPES = {
    "wavenet": ["--n-embd", "4", "--n-hidden", "8"],
    "deep": ["--n-hidden", "8"],
    "best": ["--n-embd", "4", "--n-hidden", "8"],
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def train(names, path, arch: str, norm: str, *extra: object):
    return cli(
        "train",
        names,
        "-c",
        path,
        "--preset",
        arch,
        "--norm",
        norm,
        *SHAPES[arch],
        "--save-every",
        "10",
        "--device",
        "cpu",
        *extra,
    )


def _tensors(path):
    return load_checkpoint(path).model.state_dict()


@pytest.mark.parametrize("arch", ["wavenet", "deep", "best"])
@pytest.mark.parametrize("norm", ["batch", "none"])
def test_every_verb_works_and_resume_is_exact(tmp_path, small_names, arch, norm):
    whole, part = tmp_path / "whole.safetensors", tmp_path / "part.safetensors"
    train(small_names, whole, arch, norm, "--steps", "30")
    train(small_names, part, arch, norm, "--steps", "15")  # as if stopped at step 15
    cli("train", "--resume", "-c", part, "--steps", "30", "--device", "cpu")
    ckpt = load_checkpoint(part)
    assert ckpt.model_config.arch == ("mlp" if arch == "deep" else "wavenet") and ckpt.model_config.norm == norm
    expected = _tensors(whole)
    assert all(torch.equal(expected[k], v) for k, v in _tensors(part).items())

    if norm == "batch":
        assert "calibrated" in cli("calibrate", "-c", whole).stdout
    else:
        assert "nothing to calibrate" in cli("calibrate", "-c", whole, code=1).stderr
    report = json.loads(cli("eval", "-c", whole, "--split", "val", "--json").stdout)
    assert math.isfinite(report["loss"]) and report["examples"] > 0
    names = cli("sample", "-c", whole, "-n", "5", "--seed", "3").stdout.splitlines()
    assert len(names) == 5 and all(names)
    assert names == cli("sample", "-c", whole, "-n", "5", "--seed", "3").stdout.splitlines()
    (scored,) = json.loads(cli("score", "Zoë", "--json", "-c", whole).stdout)
    assert scored["name"] == "Zoë" and math.isfinite(scored["loss"]) and scored["loss"] > 0
    assert "saturated" in cli("diagnose", "-c", whole, "--out", tmp_path / "plots").stdout


@pytest.mark.parametrize(("arch", "engine"), [("wavenet", "reference"), ("wavenet", "eager"), ("deep", "eager")])
def test_recording_diagnostics_changes_nothing_and_resumes_exactly(tmp_path, small_names, arch, engine):
    plain, recorded, resumed = (tmp_path / f"{n}.safetensors" for n in ("plain", "recorded", "resumed"))
    train(small_names, plain, arch, "batch", "--steps", "30", "--engine", engine)
    train(small_names, recorded, arch, "batch", "--steps", "30", "--engine", engine, "--diagnostics-every", "4")
    expected = _tensors(plain)
    assert all(torch.equal(expected[k], v) for k, v in _tensors(recorded).items())
    assert load_checkpoint(recorded).train_config.engine == engine
    recording = load_recording(sidecar_path(recorded))
    assert recording.steps == [0, 4, 8, 12, 16, 20, 24, 28, 30]
    assert recording.first.step == 0 and recording.last.step == 30

    stopped = ("--steps", "16", "--engine", engine, "--diagnostics-every", "4")
    train(small_names, resumed, arch, "batch", *stopped)  # stopped at 16
    cli(
        "train", "--resume", "-c", resumed, "--steps", "30", "--device", "cpu"
    )  # keeps recording at the stored interval
    assert load_recording(sidecar_path(resumed)) == recording


def test_diagnose_prints_saturation_and_writes_the_lecture_plots(tmp_path, small_names):
    ckpt = tmp_path / "run.safetensors"
    train(small_names, ckpt, "deep", "batch", "--steps", "20", "--diagnostics-every", "5")
    result = cli("diagnose", "-c", ckpt, "--out", tmp_path / "plots")
    assert "saturated" in result.stdout and "layers.4 (Tanh)" in result.stdout
    assert "update:data" in result.stdout
    written = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert written == ["activations.png", "gradients.png", "saturation.png", "update_ratio.png", "weight_gradients.png"]
    assert all((tmp_path / "plots" / name).read_bytes().startswith(PNG_MAGIC) for name in written)


def test_diagnose_without_a_recording_probes_the_checkpoint(tmp_path, small_names):
    ckpt = tmp_path / "run.safetensors"
    train(small_names, ckpt, "wavenet", "none", "--steps", "10")
    result = cli("diagnose", "-c", ckpt, "--out", tmp_path / "plots")
    assert "no diagnostics were recorded" in result.stderr and "saturated" in result.stdout
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "activations.png",
        "gradients.png",
        "weight_gradients.png",
    ]


def test_diagnose_out_without_matplotlib_says_how_to_install_it_and_fails(tmp_path, small_names, monkeypatch):
    ckpt = tmp_path / "run.safetensors"
    train(small_names, ckpt, "deep", "batch", "--steps", "10", "--diagnostics-every", "5")
    for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # any `import matplotlib...` now fails
    monkeypatch.delitem(sys.modules, "bnnames.diagnostics.plots", raising=False)
    result = cli("diagnose", "-c", ckpt, "--out", tmp_path / "plots", code=1)
    assert_one_line_error(result, "--out needs matplotlib", "pip install 'bnnames[plots]'", "pip install matplotlib")
    assert not (tmp_path / "plots").exists()
    assert "saturated" in cli("diagnose", "-c", ckpt).stdout  # the tables alone need no matplotlib


def test_a_stale_or_foreign_sidecar_is_recognised(tmp_path, small_names):
    first, other = tmp_path / "first.safetensors", tmp_path / "other.safetensors"
    train(small_names, first, "deep", "batch", "--steps", "10", "--diagnostics-every", "5")
    train(small_names, other, "deep", "batch", "--steps", "10", "--seed", "5")
    shutil.copy(sidecar_path(first), sidecar_path(other))  # another run's recording
    assert "recorded for another run" in cli("diagnose", "-c", other).stderr
    sidecar_path(other).write_text("{not json")
    assert "ignoring" in cli("diagnose", "-c", other).stderr
    train(small_names, first, "deep", "batch", "--steps", "20", "--overwrite")  # longer, not recorded
    result = cli("diagnose", "-c", first)
    assert "end at step 10" in result.stderr and "at step 20" in result.stdout  # probed as it is now


def test_wavenet_context_mismatch_is_one_line(tmp_path, small_names):
    result = cli(
        "train", small_names, "-c", tmp_path / "x.safetensors", "--preset", "wavenet", "--block-size", "6", code=1
    )
    assert "2 ** --n-layers" in result.stderr and "Traceback" not in result.stderr


def test_plots_that_cannot_be_written_are_one_line(tmp_path, small_names):
    ckpt = tmp_path / "run.safetensors"
    train(small_names, ckpt, "deep", "batch", "--steps", "10")
    (tmp_path / "afile").write_text("not a folder")
    result = cli("diagnose", "-c", ckpt, "--out", tmp_path / "afile" / "plots", code=1)
    assert "cannot write the plots" in result.stderr and "Traceback" not in result.stderr
    assert "is a file" in cli("diagnose", "-c", ckpt, "--out", tmp_path / "afile", code=1).stderr
