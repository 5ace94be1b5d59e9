"""Bad options: one line naming the flag, exit 1, and an existing checkpoint left byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import TINY, cli, fail_with, read_only_folder


def ids(table: list[tuple[tuple[str, ...], str]]) -> list[str]:
    return [" ".join(args) for args, _ in table]


@pytest.fixture
def trained(tmp_path, small_names, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    cli("train", small_names, *TINY)
    return tmp_path / "bnnames.safetensors"


TRAIN_OPTIONS = [
    (("--steps", "0"), "--steps must be between 1"),
    (("--steps", "-5"), "--steps must be between 1"),
    (("--batch-size", "0"), "--batch-size must be at least 2"),
    (("--batch-size", "1"), "BatchNorm normalises each feature over the batch and needs more than one value"),
    (("--lr", "0"), "--lr must be a positive number"),
    (("--lr", "-0.1"), "--lr must be a positive number"),
    (("--lr", "nan"), "--lr must be a positive number"),
    (("--lr", "inf"), "--lr must be a positive number"),
    (("--save-every", "0"), "--save-every must be at least 1"),
    (("--n-hidden", "0"), "--n-hidden must be between 1"),
    (("--block-size", "-1"), "--block-size must be between 1"),
    (("--bn-momentum", "nan"), "--bn-momentum must be between"),
    (("--decay", "-1"), "--decay must be between"),
    (("--n-hidden", "16384", "--n-layers", "64"), "parameters (at most 50,000,000)"),
]


@pytest.mark.parametrize("options, message", TRAIN_OPTIONS, ids=ids(TRAIN_OPTIONS))
def test_train_options(options, message, trained, small_names):
    before = trained.read_bytes()
    fail_with("train", small_names, *TINY, *options, "--overwrite", fragments=(message,))
    assert trained.read_bytes() == before  # refused before anything was written, even with --overwrite


def test_a_new_run_writes_nothing_when_an_option_is_bad(tmp_path, small_names, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fail_with("train", small_names, *TINY, "--batch-size", "1", fragments=("--batch-size must be at least 2",))
    assert os.listdir(tmp_path) == ["names.txt"]  # no checkpoint, no temp file


RESUME_OPTIONS = [
    (("--overwrite",), "--resume and --overwrite contradict each other"),
    (("--lr", "0.5"), "--lr 0.5 conflicts with the checkpoint's 0.1"),
    (("--n-hidden", "9"), "--n-hidden 9 conflicts with the checkpoint's 8"),
    (("--preset", "lecture"), "--preset conflicts with --resume"),
    (("--steps", "150"), "--steps 150 is below the 200 steps this checkpoint has done"),
]


@pytest.mark.parametrize("options, message", RESUME_OPTIONS, ids=ids(RESUME_OPTIONS))
def test_resume_options(options, message, trained):
    before = trained.read_bytes()
    fail_with("train", "--resume", *options, fragments=(message,))
    assert trained.read_bytes() == before


SAMPLE_OPTIONS = [
    (("-n", "0"), "--count must be between 1"),
    (("-n", "-3"), "--count must be between 1"),
    (("--temperature", "0"), "--temperature must be a positive number"),
    (("--temperature", "-1"), "--temperature must be a positive number"),
    (("--temperature", "nan"), "--temperature must be a positive number"),
    (("--temperature", "inf"), "--temperature must be a positive number"),
    (("--top-k", "0"), "--top-k must be between 1"),
    (("--top-k", "-2"), "--top-k must be between 1"),
    (("--max-length", "0"), "--max-length must be between 1"),
    (("--prefix", "Ma9#"), "--prefix 'Ma9#' has characters not in the vocabulary of this model: '#9'"),
    (("--prefix", "Mary", "--max-length", "3"), "leaves no room under --max-length 3"),
]


@pytest.mark.parametrize("options, message", SAMPLE_OPTIONS, ids=ids(SAMPLE_OPTIONS))
def test_sample_options(options, message, trained):
    result = fail_with("sample", *options, fragments=(message,))
    assert result  # the one line was checked; nothing went to stdout:
    assert cli("sample", *options, code=1).stdout == ""


EVAL_AND_CALIBRATE_OPTIONS = [
    (("eval", "--stats", "calibrated"), "has no calibrated statistics: run `bnnames calibrate` first"),
]


@pytest.mark.parametrize("args, message", EVAL_AND_CALIBRATE_OPTIONS, ids=ids(EVAL_AND_CALIBRATE_OPTIONS))
def test_eval_and_calibrate_options(args, message, trained):
    before = trained.read_bytes()
    fail_with(*args, fragments=(message,))
    assert trained.read_bytes() == before


def test_checkpoint_in_a_missing_folder_or_under_a_file(tmp_path, small_names, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fail_with(
        "train",
        small_names,
        *TINY,
        "-c",
        tmp_path / "nope" / "c.safetensors",
        fragments=("folder", "nope", "does not exist; create it or choose another -c"),
    )
    fail_with("train", small_names, *TINY, "-c", small_names / "c.safetensors", fragments=("does not exist",))
    folder = ("is a folder, not a checkpoint file: pass -c with a file name",)
    fail_with("train", small_names, *TINY, "-c", tmp_path, fragments=folder)
    assert sorted(os.listdir(tmp_path)) == ["names.txt"]


def test_checkpoint_in_a_folder_that_cannot_be_written(tmp_path, small_names, monkeypatch, trained):
    folder = read_only_folder(tmp_path)
    fail_with(
        "train",
        small_names,
        *TINY,
        "-c",
        folder / "c.safetensors",
        fragments=(f"cannot write the checkpoint into {folder}", "choose another -c"),
    )


def test_calibrate_and_resume_refuse_before_working_when_the_folder_became_read_only(trained, monkeypatch):
    """Both rewrite the checkpoint in place: the folder is probed before any work is done."""
    import errno

    import bnnames.storage.files

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    before = trained.read_bytes()
    monkeypatch.setattr(bnnames.storage.files.tempfile, "TemporaryFile", read_only)
    fail_with("calibrate", fragments=("cannot write the checkpoint into", "Read-only file system"))
    fail_with("train", "--resume", "--steps", "300", fragments=("cannot write the checkpoint into",))
    assert trained.read_bytes() == before


def test_the_names_file_is_never_used_as_the_checkpoint(tmp_path, small_names, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = small_names.read_bytes()
    fail_with("train", small_names, *TINY, "-c", small_names, fragments=("already exists",))
    fail_with("train", small_names, *TINY, "-c", small_names, "--overwrite", fragments=("is the names file itself",))
    assert small_names.read_bytes() == before
