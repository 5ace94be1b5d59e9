"""The compile cache stays bounded (least recently used out first), and `bnnames cache` shows or clears it."""

from __future__ import annotations

import os
from pathlib import Path

from bnnames.training.fast import packages
from bnnames.training.fast.cache import CACHE_ENV, make_private
from tests.helpers import cli


def _fill(root: Path) -> tuple[Path, list[Path]]:
    """A compile cache with three packages (used at t=10, 30, 20) and one folder of torch's (t=5)."""
    folder = root / "compiled"
    make_private(folder / "steps", root)
    made = []
    for key, used in (("a" * 32, 10), ("b" * 32, 30), ("c" * 32, 20)):
        source = folder / "steps" / "new.pt2"
        source.write_bytes(bytes(1000))
        package = folder / "steps" / f"{key}.pt2"
        packages.write_package(source, package, about=f"model {key[0]}")
        os.utime(package, (used, used))
        made.append(package)
    (folder / "ab").mkdir()
    (folder / "ab" / "kernel.so").write_bytes(bytes(500))
    os.utime(folder / "ab", (5, 5))
    return folder, made


def test_the_least_recently_used_go_first_and_the_one_in_use_stays(tmp_path: Path) -> None:
    folder, (a, b, c) = _fill(tmp_path)
    sizes = {entry.path: entry.size for entry in packages.entries(folder)}
    assert [entry.path for entry in packages.entries(folder)] == [folder / "ab", a, c, b]
    limit = sizes[b] + sizes[c]  # room for two packages: torch's folder and the oldest package go
    removed = packages.prune(folder, keep=a, limit=limit)  # a: just loaded, kept though oldest
    assert [entry.path for entry in removed] == [folder / "ab", c]
    assert a.exists() and b.exists() and not c.exists() and not packages.record_path(c).exists()
    assert sum(entry.size for entry in packages.entries(folder)) <= limit


def test_a_load_touches_its_package(tmp_path: Path) -> None:
    folder, (a, _, _) = _fill(tmp_path)
    with packages.verified_copy(a, print) as copy:
        assert copy is not None and copy.read_bytes() == a.read_bytes()
    assert a.stat().st_mtime > 30  # now: the most recently used
    assert packages.entries(folder)[-1].path == a


def test_the_verb_shows_the_folder_size_and_entries(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    folder, _ = _fill(tmp_path)
    out = cli("cache").stdout
    assert f"compile cache: {folder}" in out
    assert f"of {packages.LIMIT_BYTES / 1e6:.1f} MB" in out
    lines = [line.split() for line in out.splitlines() if line.startswith("  ") and "model" in line]
    assert [line[0] for line in lines] == ["a" * 12, "c" * 12, "b" * 12]  # least recently used first
    assert all(line[-2:] == ["model", line[0][0]] for line in lines)
    assert "torch's own files of past compiles (1)" in out


def test_clear_removes_only_the_compile_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))  # a cache root that holds a file of the user's
    (tmp_path / "mine.txt").write_text("keep me")
    folder, _ = _fill(tmp_path)
    assert "4 entries" in cli("cache", "--clear").stdout
    assert not folder.exists() and (tmp_path / "mine.txt").read_text() == "keep me"
    assert "no compiled steps" in cli("cache").stdout  # an empty cache shows, and is not created
    assert not folder.exists()


def test_an_insecure_cache_is_said(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    folder, _ = _fill(tmp_path)
    folder.chmod(0o777)
    result = cli("cache")
    assert f"{folder} can be written by anyone" in result.stderr and "chmod 700" in result.stderr
