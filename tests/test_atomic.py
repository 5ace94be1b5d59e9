"""Atomic writes: the old file or the new one, never half; the user's permissions; no litter."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

import pytest

import bnnames.storage.files
from bnnames.download import fetch_standard_dataset
from bnnames.errors import DataError
from bnnames.storage.files import _current_umask, atomic_write_bytes, atomic_writer
from tests.helpers import TINY, cli, fail_with


@contextlib.contextmanager
def umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002])
def test_a_new_checkpoint_gets_the_umask_mode_not_0600(mask, tmp_path, small_names, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with umask(mask):
        assert _current_umask() == mask
        cli("train", small_names, *TINY)
    assert mode(tmp_path / "bnnames.safetensors") == 0o666 & ~mask


def test_a_rewritten_checkpoint_keeps_its_mode(tmp_path, small_names, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli("train", small_names, *TINY)
    checkpoint = tmp_path / "bnnames.safetensors"
    checkpoint.chmod(0o600)  # the user made it private: calibrate must not widen it
    before = checkpoint.read_bytes()
    cli("calibrate")
    assert checkpoint.read_bytes() != before and mode(checkpoint) == 0o600


def test_writing_through_a_symlink_keeps_the_link(tmp_path, small_names, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = tmp_path / "runs" / "real.safetensors"
    real.parent.mkdir()
    cli("train", small_names, *TINY, "-c", real)
    link = tmp_path / "bnnames.safetensors"
    link.symlink_to(real)
    before = real.read_bytes()
    cli("calibrate")  # through the link
    assert link.is_symlink() and real.read_bytes() != before
    assert sorted(os.listdir(real.parent)) == ["real.safetensors"]


@pytest.mark.parametrize("stop", [RuntimeError, KeyboardInterrupt, SystemExit])  # a bug, Ctrl-C, sys.exit
def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(stop, tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(stop), atomic_writer(target) as handle:
        handle.write(b"new, half written")
        raise stop("crash in the middle")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["file.bin"]
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["file.bin"]


def test_a_full_disk_during_calibrate_is_one_line_and_keeps_the_checkpoint(tmp_path, small_names, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli("train", small_names, *TINY)
    checkpoint = tmp_path / "bnnames.safetensors"
    before = checkpoint.read_bytes()

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bnnames.storage.files.os, "fsync", no_space)
    fail_with("calibrate", fragments=("cannot write checkpoint bnnames.safetensors: No space left on device",))
    fail_with("train", small_names, *TINY, "--overwrite", fragments=("No space left on device",), progress=True)
    monkeypatch.undo()
    assert checkpoint.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["bnnames.safetensors", "names.txt"]


def test_the_download_is_written_atomically_with_the_umask_mode(tmp_path, names_path):
    target = tmp_path / "data" / "names.txt"
    with umask(0o027):
        fetch_standard_dataset(target, names_path.resolve().as_uri())  # a file:// URL: no network needed
    assert target.read_bytes() == names_path.read_bytes() and mode(target) == 0o640
    assert os.listdir(target.parent) == ["names.txt"]


def test_a_download_that_is_not_the_dataset_writes_nothing(tmp_path, small_names):
    target = tmp_path / "data" / "names.txt"
    with pytest.raises(DataError, match="is not the standard names dataset"):
        fetch_standard_dataset(target, small_names.resolve().as_uri())
    assert not target.parent.exists() or os.listdir(target.parent) == []
