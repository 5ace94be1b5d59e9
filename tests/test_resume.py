"""Interrupted training resumes bit-identically, and the checkpoint on disk is always loadable.

Three ways to interrupt, from the most controlled to the most brutal:
- in-process, at exact steps (every kind of boundary: before the first report, on a save, just
  after one, across the learning-rate decay, on the very last step), chained several times;
- real SIGINT / SIGTERM delivered to `bnnames train` in a child process, at exact steps
  (tests/signal_driver.py) and at whatever moment the signal happens to land;
- SIGKILL (kill -9) at random moments while the run saves after every step.
Each resumed run must equal the uninterrupted one: every tensor `torch.equal`, the generator
state, the step and the final losses.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bnnames.errors import CheckpointError
from bnnames.storage.checkpoint import load_checkpoint
from bnnames.training.run import TrainRequest, TrainResult, run_training
from tests.helpers import BNNAMES, Quiet, assert_same_run, cli, interrupt_after, subprocess_env

SETTINGS = {"n_hidden": 8, "n_embd": 3, "steps": 400, "decay_at": 250}  # the lr decays mid-run
DRIVER = Path(__file__).with_name("signal_driver.py")


def train(
    path: Path, data: Path | None, stop_at: int | None = None, save_every: int | None = 100, **overrides
) -> TrainResult:
    """One in-process `bnnames train` (fresh when `data` is given, else --resume), stopped after `stop_at`."""
    stop: list[bool] = []
    undo = interrupt_after(stop_at, lambda: stop.append(True)) if stop_at is not None else (lambda: None)
    try:
        request = TrainRequest(
            checkpoint=path, data=data, overrides=overrides, resume=data is None, save_every=save_every, device="cpu"
        )
        return run_training(request, Quiet(), should_stop=lambda: bool(stop))
    finally:
        undo()


@pytest.fixture(scope="module")
def names(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(["anna", "bob", "carl", "dora", "emil", "fay", "gus", "hana", "ivo", "jo"] * 6))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, names) -> Path:
    """The uninterrupted run."""
    path = tmp_path_factory.mktemp("reference") / "c.safetensors"
    assert train(path, names, **SETTINGS).status == "done"
    return path


@pytest.mark.parametrize("at", [1, 99, 100, 101, 137, 249, 250, 251, 399, 400])
def test_interrupt_anywhere_then_resume_is_bit_identical(at, names, reference, tmp_path):
    path = tmp_path / "c.safetensors"
    result = train(path, names, stop_at=at, **SETTINGS)
    assert (result.status, result.step) == ("interrupted", at)
    saved = load_checkpoint(path)
    assert saved.step == at and saved.losses == {}  # at 400: every step done, the final losses not yet
    assert train(path, None).status == "done"
    assert_same_run(load_checkpoint(path), load_checkpoint(reference))


def test_several_interruptions_in_a_row_and_other_save_intervals(names, reference, tmp_path):
    path = tmp_path / "c.safetensors"
    for at, data, save_every in [(50, names, 100), (230, None, 7), (231, None, None), (399, None, 1)]:
        assert train(path, data, stop_at=at, save_every=save_every, **(SETTINGS if data else {})).step == at
    assert train(path, None, save_every=None).status == "done"
    assert_same_run(load_checkpoint(path), load_checkpoint(reference))


def test_resume_to_more_steps_equals_a_longer_run(names, tmp_path):
    """A finished 400-step run, resumed to 600, equals a 600-step run (same lr schedule)."""
    longer = tmp_path / "longer.safetensors"
    train(longer, names, **{**SETTINGS, "steps": 600})
    path = tmp_path / "c.safetensors"
    train(path, names, **SETTINGS)
    assert train(path, None, steps=600).status == "done"
    assert_same_run(load_checkpoint(path), load_checkpoint(longer))


def test_a_fresh_run_stopped_before_its_first_step_writes_nothing(names, tmp_path):
    """Ctrl-C while the data loads: no step done, so no file (an --overwrite target stays as it was)."""
    path = tmp_path / "c.safetensors"
    path.write_bytes(b"the user's old checkpoint")
    request = TrainRequest(checkpoint=path, data=names, overrides=SETTINGS, overwrite=True, save_every=100)
    result = run_training(request, Quiet(), should_stop=lambda: True)
    assert (result.status, result.step) == ("not started", 0)
    assert path.read_bytes() == b"the user's old checkpoint" and os.listdir(tmp_path) == ["c.safetensors"]


def test_resume_drops_stale_calibration_and_says_so(names, reference, tmp_path):
    path = tmp_path / "c.safetensors"
    train(path, names, stop_at=200, **SETTINGS)
    cli("calibrate", "-c", path, "--weights", "last")
    assert load_checkpoint(path).model.has_calibration()
    progress = Quiet()
    run_training(TrainRequest(checkpoint=path, resume=True, save_every=100), progress, lambda: False)
    assert any("calibrated BatchNorm statistics were dropped" in note for note in progress.notes)
    assert_same_run(load_checkpoint(path), load_checkpoint(reference))


# ---- real signals, in a child process


def child(*args: object) -> list[str]:
    """`python -m bnnames train ARGS` with the settings of the in-process runs (ARGS may override them)."""
    return [
        *BNNAMES,
        "train",
        "--n-hidden",
        "8",
        "--n-embd",
        "3",
        "--steps",
        "400",
        "--decay-at",
        "250",
        "--save-every",
        "100",
        "--device",
        "cpu",
        *(str(a) for a in args),
    ]


@pytest.mark.parametrize("at, name, code", [(137, "INT", 130), (250, "TERM", 143), (400, "INT", 130)])
def test_a_real_signal_saves_at_that_step_and_exits_128_plus_signal(at, name, code, names, reference, tmp_path):
    path = tmp_path / "c.safetensors"
    command = [sys.executable, str(DRIVER), str(at), name, *child(names, "-c", path)[len(BNNAMES) :]]
    done = subprocess.run(command, check=False, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr
    assert f"interrupted at step {at}; saved {path}" in done.stderr and "Traceback" not in done.stderr
    assert load_checkpoint(path).step == at
    cli("train", "--resume", "-c", path, "--device", "cpu")
    assert_same_run(load_checkpoint(path), load_checkpoint(reference))


def test_a_second_ctrl_c_quits_at_once_keeping_the_last_saved_checkpoint(names, tmp_path):
    path = tmp_path / "c.safetensors"
    command = [sys.executable, str(DRIVER), "137", "INT,INT", *child(names, "-c", path)[len(BNNAMES) :]]
    done = subprocess.run(command, check=False, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 130 and done.stderr.strip().splitlines()[-1] == "error: interrupted", done.stderr
    assert load_checkpoint(path).step == 100  # the periodic save before the second Ctrl-C
    assert os.listdir(tmp_path) == ["c.safetensors"]


def test_a_signal_at_a_random_moment(names, tmp_path):
    """SIGINT as soon as the first periodic save appears, SIGTERM once a later one can be read."""
    path = tmp_path / "c.safetensors"
    reference_path = tmp_path / "reference.safetensors"
    train(reference_path, names, **{**SETTINGS, "steps": 3000})
    for signum, code, wait_for_step in [(signal.SIGINT, 130, 0), (signal.SIGTERM, 143, 1000)]:
        args = (
            child(names, "-c", path, "--steps", "3000")
            if signum == signal.SIGINT
            else [*BNNAMES, "train", "--resume", "-c", path, "--device", "cpu", "--save-every", "100"]
        )
        process = subprocess.Popen(args, env=subprocess_env(), stderr=subprocess.PIPE, text=True)
        _wait_for_step(path, process, wait_for_step)
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
        assert process.returncode == code, err
        assert "interrupted at step" in err and "Traceback" not in err
    assert 0 < load_checkpoint(path).step < 3000
    cli("train", "--resume", "-c", path, "--device", "cpu")
    assert_same_run(load_checkpoint(path), load_checkpoint(reference_path))


def _wait_for_step(path: Path, process: subprocess.Popen, step: int) -> int:
    """Poll the checkpoint while the child rewrites it: every read must succeed (old or new file)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be interrupted"
        if path.exists():
            seen = load_checkpoint(path).step  # never a half-written file, however the timing falls
            if seen > step:
                return seen
        time.sleep(0.005)
    raise AssertionError("no checkpoint appeared")


def test_kill_9_at_random_moments_leaves_a_loadable_checkpoint_and_resume_is_exact(names, tmp_path):
    """Saving after every step, the run is killed three times at random; the file always loads."""
    path = tmp_path / "c.safetensors"
    reference_path = tmp_path / "reference.safetensors"
    train(reference_path, names, **{**SETTINGS, "steps": 3000})
    rng = random.Random(4)
    steps_seen = []
    for round_ in range(3):
        args = (
            child(names, "-c", path, "--steps", "3000", "--save-every", "1")
            if round_ == 0
            else [*BNNAMES, "train", "--resume", "-c", path, "--device", "cpu", "--save-every", "1"]
        )
        process = subprocess.Popen(args, env=subprocess_env(), stderr=subprocess.DEVNULL)
        _wait_for_step(path, process, steps_seen[-1] if steps_seen else 0)
        time.sleep(rng.uniform(0.0, 0.2))
        process.kill()  # SIGKILL: no handler, no cleanup, possibly in the middle of a write
        process.wait(timeout=60)
        try:
            steps_seen.append(load_checkpoint(path).step)
        except CheckpointError as err:  # pragma: no cover - the failure this test exists to catch
            raise AssertionError(f"kill -9 left an unreadable checkpoint: {err}") from None
    assert steps_seen == sorted(steps_seen) and 0 < steps_seen[-1] < 3000
    litter = [p.name for p in tmp_path.iterdir() if p.name not in ("c.safetensors", "reference.safetensors")]
    litter.remove(".c.safetensors.lock")  # the dead run's lock file: inert, taken over by the resume below
    assert all(name.startswith(".c.safetensors.") and name.endswith(".tmp") for name in litter), litter
    assert "took over the lock" in cli("train", "--resume", "-c", path, "--device", "cpu").stderr
    assert_same_run(load_checkpoint(path), load_checkpoint(reference_path))
    assert not (tmp_path / ".c.safetensors.lock").exists()
