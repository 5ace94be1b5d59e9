"""score and sample need the training names file only for "in names file" and --novel: with the
file moved, changed or gone they still work, and say so once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import TINY, assert_one_line_error, cli


@pytest.fixture
def orphan(tmp_path: Path, small_names: Path) -> tuple[Path, Path]:
    """A tiny checkpoint whose names file was moved away after training: (checkpoint, where the file is now)."""
    names = tmp_path / "train-names.txt"
    shutil.copy(small_names, names)
    path = tmp_path / "m.safetensors"
    cli("train", names, *TINY, "-c", path)
    moved = tmp_path / "moved.txt"
    names.rename(moved)
    return path, moved


def notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("note:")]


def test_score_without_the_names_file_scores_and_says_once_that_in_names_file_is_unknown(orphan):
    path, moved = orphan
    known = json.loads(cli("score", "Ana", "Zed", "--json", "-c", path, "--data", moved).stdout)
    assert [s["in_names_file"] for s in known] == [True, False]
    result = cli("score", "Ana", "Zed", "--json", "-c", path)
    scores = json.loads(result.stdout)
    assert [s["in_names_file"] for s in scores] == [None, None] and [s["split"] for s in scores] == [None, None]
    assert [s["log_likelihood"] for s in scores] == [s["log_likelihood"] for s in known]  # scored all the same
    (line,) = notes(result.stderr)
    assert "is gone" in line and "--data" in line and "in names file" in line
    table = cli("score", "Ana", "Zed", "-c", path)
    assert len(notes(table.stderr)) == 1
    rows = [line.split() for line in table.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ["Ana", "Zed"] and [row[-1] for row in rows] == ["?", "?"]


def test_score_with_a_changed_names_file_scores_and_says_why_in_names_file_is_unknown(orphan):
    path, moved = orphan
    moved.rename(path.parent / "train-names.txt")
    (path.parent / "train-names.txt").write_text("Ana\nBo\nEve\n", encoding="utf-8")
    result = cli("score", "Ana", "--json", "-c", path)
    assert json.loads(result.stdout)[0]["in_names_file"] is None
    (line,) = notes(result.stderr)
    assert "changed since training" in line


def test_sample_without_the_names_file_samples_and_only_novel_needs_it(orphan):
    path, moved = orphan
    result = cli("sample", "-n", "5", "--seed", "1", "-c", path)
    assert len(result.stdout.splitlines()) == 5 and not result.stderr.strip()  # nothing to say: it was not needed
    novel = cli("sample", "-n", "5", "--seed", "1", "--novel", "-c", path, code=1)
    assert_one_line_error(novel, "is gone", "--data")
    given = cli("sample", "-n", "5", "--seed", "1", "--novel", "-c", path, "--data", moved)
    assert len(given.stdout.splitlines()) == 5
