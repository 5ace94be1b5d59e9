"""What each verb prints into a pipe or a file (the test runner's stdout is not a terminal):
plain text, no box drawing and no colour codes, tables whose columns line up with spaces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bnnames.training.fast.cache import CACHE_ENV
from tests.helpers import TINY, cli

BOX_DRAWING = re.compile("[\u2500-\u257f]")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, names_path) -> Path:
    path = tmp_path_factory.mktemp("plain") / "c.safetensors"
    cli("train", names_path, *TINY, "-c", path)
    return path


def assert_plain(text: str) -> None:
    assert text.strip()
    assert not BOX_DRAWING.search(text), text
    assert "\x1b[" not in text, repr(text)


def cells(line: str) -> list[tuple[int, int]]:
    """Where each cell of a plain table row starts and ends: columns are two or more spaces apart."""
    return [m.span() for m in re.finditer(r"\S+(?: \S+)*", line)]


def assert_aligned(lines: list[str], header: str, rows: int) -> None:
    """The `rows` lines after `header` have one cell under each heading, flush left or right with it."""
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    headings = cells(lines[start])
    body = lines[start + 1 : start + 1 + rows]
    assert len(body) == rows
    for line in body:
        found = cells(line)
        assert len(found) == len(headings), (lines[start], line)
        for (a, b), (ha, hb) in zip(found, headings):
            assert a == ha or b == hb, (lines[start], line)


def test_train_and_calibrate_print_plain_lines_and_a_plain_table(tmp_path, small_names):
    path = tmp_path / "m.safetensors"
    assert_plain(cli("train", small_names, *TINY, "-c", path).stdout)
    text = cli("calibrate", "-c", path).stdout
    assert_plain(text)
    assert_aligned(text.splitlines(), "BatchNorm stats", rows=2)


def test_eval_prints_a_plain_table(trained):
    text = cli("eval", "--split", "all", "-c", trained).stdout
    assert_plain(text)
    assert_aligned(text.splitlines(), "split", rows=3)


def test_score_prints_a_plain_table_one_line_a_name_however_long(trained):
    long = "ab" * 60  # wider than any terminal: the row must not wrap
    text = cli("score", "emma", long, "ava", "-c", trained).stdout
    assert_plain(text)
    lines = text.splitlines()
    assert_aligned(lines, "name", rows=3)
    assert [line.split()[0] for line in lines[1:]] == ["emma", long, "ava"]


def test_diagnose_prints_plain_tables(trained):
    text = cli("diagnose", "-c", trained).stdout
    assert_plain(text)
    lines = text.splitlines()
    assert_aligned(lines, "layer  ", rows=1)  # the heading row, not the title
    assert_aligned(lines, "weight  ", rows=3)


def test_compare_prints_a_plain_table(trained):
    text = cli("compare", trained, trained, "--name", "a", "--name", "b").stdout
    assert_plain(text)
    assert any(line.split()[:1] == ["steps"] for line in text.splitlines()), text


def test_cache_prints_plain_lines(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert_plain(cli("cache").stdout)
