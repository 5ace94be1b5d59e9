"""The lasting compile cache: where it is, that torch uses it, and that a bad one never stops a run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch._inductor.config as inductor_config  # importing it sets TORCHINDUCTOR_CACHE_DIR: done first

from bnnames.training.fast import cache
from bnnames.training.fast.cache import (
    CACHE_ENV,
    TORCH_CACHE_ENV,
    VEC_ISA_ENV,
    cache_root,
    compile_cache,
    compile_cache_folder,
    trusted_folder,
    unusable_because,
)
from tests.helpers import TINY, cli


def test_the_cache_lives_in_the_platforms_cache_folder_unless_moved() -> None:
    home = Path("/home/ada")
    assert cache_root({}, "linux", home) == home / ".cache" / "bnnames"
    assert cache_root({"XDG_CACHE_HOME": "/xdg"}, "linux", home) == Path("/xdg/bnnames")
    assert cache_root({}, "darwin", home) == home / "Library" / "Caches" / "bnnames"
    assert cache_root({"LOCALAPPDATA": "C:/Local"}, "win32", home) == Path("C:/Local/bnnames/Cache")
    moved = {CACHE_ENV: "/big/disk/bn", "XDG_CACHE_HOME": "/xdg"}
    assert cache_root(moved, "linux", home) == cache_root(moved, "darwin", home) == Path("/big/disk/bn")
    assert cache_root({CACHE_ENV: ""}, "linux", home) == home / ".cache" / "bnnames"  # empty: unset


def test_a_usable_folder_is_created_and_an_unusable_one_says_why(tmp_path: Path, monkeypatch) -> None:
    assert unusable_because(tmp_path / "new" / "compiled") is None
    assert (tmp_path / "new" / "compiled").is_dir()
    assert list((tmp_path / "new" / "compiled").iterdir()) == []  # the write probe is gone
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert unusable_because(blocked / "compiled") == "Not a directory"
    monkeypatch.setattr(cache, "MIN_FREE_BYTES", 1 << 62)  # more than any disk has free
    assert "the disk is full" in unusable_because(tmp_path)


def test_torch_compiles_into_the_lasting_folder_only_within_the_block(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(TORCH_CACHE_ENV, raising=False)
    with compile_cache(compile_cache_folder(os.environ)):
        from torch._inductor.runtime.cache_dir_utils import cache_dir

        assert Path(cache_dir()) == compile_cache_folder(os.environ) == tmp_path / "compiled"
    assert TORCH_CACHE_ENV not in os.environ


def test_torch_trusts_the_cpus_flags_within_the_block_unless_told_otherwise(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(VEC_ISA_ENV, raising=False)
    with pytest.raises(RuntimeError, match="compile failed"), compile_cache(tmp_path):
        assert inductor_config.cpp.vec_isa_ok is True  # no probe libraries built and loaded
        raise RuntimeError("compile failed")  # a failure goes through to the caller's fallback
    assert inductor_config.cpp.vec_isa_ok is None  # only within the block
    monkeypatch.setenv(VEC_ISA_ENV, "0")  # the user's answer (read by torch at import) stands
    with compile_cache(tmp_path):
        assert inductor_config.cpp.vec_isa_ok is None


def test_a_broken_cache_is_said_once_and_compiling_goes_on_without_it(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "file").write_text("in the way")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "file"))
    monkeypatch.setenv(TORCH_CACHE_ENV, str(tmp_path / "torch's own"))
    notes: list[str] = []
    folder = compile_cache_folder(os.environ)
    assert trusted_folder(folder, cache_root(os.environ), notes.append) is None
    assert len(notes) == 1 and "cannot be used (Not a directory)" in notes[0] and CACHE_ENV in notes[0]
    with compile_cache(None) as scratch:  # a fresh private temporary folder, for this compile only
        assert os.environ[TORCH_CACHE_ENV] == str(scratch) and scratch.stat().st_mode & 0o777 == 0o700
    assert os.environ[TORCH_CACHE_ENV] == str(tmp_path / "torch's own") and not scratch.exists()


@pytest.mark.parametrize("bad", ["file", "full"])
def test_the_cli_trains_on_with_a_bad_cache(tmp_path: Path, small_names: Path, monkeypatch, bad: str) -> None:
    """Through `bnnames train --engine compiled`: the run completes and the note is printed once."""
    if bad == "file":
        (tmp_path / "file").write_text("in the way")
        monkeypatch.setenv(CACHE_ENV, str(tmp_path / "file"))
    else:
        monkeypatch.setattr(cache, "MIN_FREE_BYTES", 1 << 62)

    def no_export(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("not compiled in this test")  # past the cache check: the eager step takes over

    monkeypatch.setattr(torch.export, "export", no_export)
    result = cli("train", small_names, "-c", tmp_path / "m.safetensors", *TINY, "--engine", "compiled")
    said = result.stdout + result.stderr
    assert said.count("cannot be used") == 1, said
    assert (tmp_path / "m.safetensors").exists()
