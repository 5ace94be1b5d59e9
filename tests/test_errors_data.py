"""Bad names files: one line on stderr, exit 1, no traceback, and no file written or changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import bnnames.data
from tests.helpers import TINY, cli, fail_with


def _write(path: Path, raw: bytes) -> Path:
    path.write_bytes(raw)
    return path


BAD_FILES = {
    # case: (bytes of the file, or None for "do not create it"; what the message must say)
    "missing": (None, "does not exist"),
    "empty": (b"", "holds no names"),
    "only blank lines": (b"\n   \n\r\n\t\n\n", "holds no names"),
    "latin-1": ("anna\nZoë\n".encode("latin-1"), "is not UTF-8 text (bad byte at offset 7)"),
    "utf-16": ("anna\nbob\n".encode("utf-16"), "is not UTF-8 text"),
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not UTF-8 text"),
    "nul bytes": (b"anna\nbo\x00b\n", "line 2 holds control character U+0000: this looks like a binary file"),
    "elf binary": (b"\x7fELF\x02\x01\x01\x00\x00\x00", "control character U+007F"),
    "old mac line ends": (b"anna\rbob\rcarl\r", "carriage return"),
    "tabs": (b"anna\tbob\n", "a tab"),
    "too few names": (b"Ana\nBo\nLou\nEve\nIan\n", "5 names are too few for three non-empty"),
    "absurdly long line": (b"anna\n" + b"x" * 100_000 + b"\n", "line 2 is 100000 characters long (at most 256)"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_train_refuses_a_bad_names_file_and_writes_nothing(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw, message = BAD_FILES[case]
    names = tmp_path / "names.txt"
    if raw is not None:
        _write(names, raw)
    fail_with("train", names, *TINY, fragments=(message, str(names)))
    assert os.listdir(tmp_path) == ([] if raw is None else ["names.txt"])  # no checkpoint, no temp file
    if raw is not None:
        assert names.read_bytes() == raw


def test_a_folder_is_not_a_names_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fail_with("train", tmp_path, *TINY, fragments=("is a folder, not a names file",))


def test_six_names_are_enough_five_are_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = _write(tmp_path / "names.txt", b"anna\nbob\ncarl\ndan\neve\n")
    fail_with("train", names, *TINY, fragments=("use at least 6 names",))
    names.write_bytes(b"anna\nbob\ncarl\ndan\neve\nfay\n")
    cli("train", names, *TINY, "--batch-size", "2")


def test_a_file_over_the_size_limit_is_refused_before_reading_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bnnames.data, "MAX_FILE_BYTES", 1 << 20)
    names = _write(tmp_path / "names.txt", b"anna\n" * 300_000)  # 1.5 MB
    fail_with("train", names, *TINY, fragments=("is larger than 1 MiB",))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = _write(tmp_path / "names.txt", b"anna\nbob\n" * 10)
    names.chmod(0)
    fail_with("train", names, *TINY, fragments=("cannot read names file", "Permission denied"))


@pytest.mark.parametrize("case", ["missing", "nul bytes", "too few names"])
def test_a_bad_names_file_never_touches_an_existing_checkpoint(case, tmp_path, small_names, monkeypatch):
    """Even with --overwrite: the data is checked before anything is written."""
    monkeypatch.chdir(tmp_path)
    cli("train", small_names, *TINY)
    checkpoint = tmp_path / "bnnames.safetensors"
    before = checkpoint.read_bytes()
    raw, message = BAD_FILES[case]
    bad = tmp_path / "bad.txt"
    if raw is not None:
        _write(bad, raw)
    fail_with("train", bad, *TINY, "--overwrite", fragments=(message,))
    assert checkpoint.read_bytes() == before
    for command in (("eval",), ("calibrate",), ("sample", "--novel"), ("score", "anna")):
        fail_with(*command, "--data", bad, fragments=(message,))
        assert checkpoint.read_bytes() == before


def test_a_names_file_that_changed_since_training_is_refused_unless_named(tmp_path, small_names, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli("train", small_names, *TINY, "--steps", "100")  # stops before the last save of TINY's 200
    checkpoint = tmp_path / "bnnames.safetensors"
    before = checkpoint.read_bytes()
    small_names.write_bytes(small_names.read_bytes() + "Zoë\n".encode())
    commands = (
        ("eval",),
        ("calibrate",),
        ("sample", "--novel"),
        ("train", "--resume", "--steps", "200"),
    )
    for command in commands:
        fail_with(*command, fragments=(str(small_names.resolve()), "changed since training", "--data"))
        assert checkpoint.read_bytes() == before
    scored = cli("score", "Ana")  # needs the file only for "in names file": scores, and says why that is "?"
    assert "changed since training" in scored.stderr and scored.stdout.split()[-1] == "?"
    result = cli("eval", "--data", small_names)  # named: used, and the user is told
    assert "differs from the names file this model was trained on" in result.stderr
    fail_with("train", small_names, "--resume", "--steps", "200", fragments=("resume needs the same data",))
    assert checkpoint.read_bytes() == before


def test_a_names_file_that_is_gone_or_gained_characters(tmp_path, small_names, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli("train", small_names, *TINY)
    checkpoint = tmp_path / "bnnames.safetensors"
    before = checkpoint.read_bytes()
    stored = small_names.resolve()
    small_names.rename(tmp_path / "moved.txt")
    fail_with("eval", fragments=(f"the names file of this checkpoint, {stored}, is gone", "--data"))
    other = _write(tmp_path / "other.txt", "\n".join(["Ana", "Bo", "Xavier", "Quentin", "Ümit", "Lou"] * 3).encode())
    fail_with("eval", "--data", other, fragments=("has characters the model never saw",))
    assert checkpoint.read_bytes() == before
