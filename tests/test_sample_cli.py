"""`bnnames sample` with constraints through the CLI: files, JSON, and one line for every bad constraint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import TINY, cli, fail_with


@pytest.fixture(scope="module")
def trained(tmp_path_factory, names_path) -> Path:  # type: ignore[no-untyped-def]
    """A tiny model of the standard file (26 letters, context 3: the exact sampler's table)."""
    path = tmp_path_factory.mktemp("steer") / "c.safetensors"
    cli("train", names_path, *TINY, "-c", path)
    return path


@pytest.fixture(scope="module")
def wide(tmp_path_factory, names_path) -> Path:  # type: ignore[no-untyped-def]
    """Context 4: 27 ** 4 contexts, too many for the table, so constraints go to rejection sampling."""
    path = tmp_path_factory.mktemp("steer-wide") / "w.safetensors"
    cli("train", names_path, *TINY, "--block-size", "4", "-c", path)
    return path


def _names(path: Path, *args: object) -> list[str]:
    return cli("sample", "-c", path, *args).stdout.splitlines()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--min-length", "10", "--max-length", "5"), "--min-length 10 is above --max-length 5"),
        (("--match", "[0-9]+"), "--match '[0-9]+' matches no name made of this model's characters"),
        (("--contains", "abcdefgh", "--max-length", "5"), "--contains 'abcdefgh' is longer than --max-length 5"),
        (("--suffix", "Z"), "--suffix 'Z' has characters not in the vocabulary"),
        (("--contains", "é"), "--contains 'é' has characters not in the vocabulary"),
        (("--top-k", "1", "--suffix", "q"), "probability 0"),
        (("--prefix", "ab", "--without", "b"), "--prefix 'ab' --without 'b' together match no name"),
        (("--match", "a(?=b)"), "cannot express"),
        (("--match", "(a"), "not a valid regular expression"),
        (("--unique", "--max-length", "2", "-n", "100000"), "different names of 1 to 2 characters: ask"),
        (("--novel", "--max-length", "2", "-n", "5000"), "more are in the names file"),
        (("--min-distance", "2"), "add --novel"),
        (("--top-p", "0"), "--top-p must be above 0"),
        (("--ranked", "--temperature", "0.5"), "--ranked lists the model's own"),
        (("--ranked", "--max-length", "2", "-n", "100000"), "there are only 702 different names"),
    ],
)
def test_a_bad_constraint_is_one_line_within_seconds(trained, args, fragment) -> None:  # type: ignore[no-untyped-def]
    fail_with("sample", "-c", trained, "--seed", "1", *args, fragments=(fragment,))  # each well under a second here


def test_rejection_sampling_gives_up_with_what_it_found(wide) -> None:  # type: ignore[no-untyped-def]
    fail_with(
        "sample", "-c", wide, "--contains", "qqqqq", "--max-draws", "20000",
        fragments=("found 0 of 20 names satisfying --contains 'qqqqq' in", "--max-draws"),
    )  # fmt: skip
    names = _names(wide, "-n", "5", "--suffix", "a", "--seed", "2")
    assert len(names) == 5 and all(name.endswith("a") for name in names)


def test_constrained_names_satisfy_everything_and_a_seed_repeats_them(trained) -> None:  # type: ignore[no-untyped-def]
    args = ("-n", "40", "--seed", "3", "--prefix", "a", "--contains", "n", "--without", "e", "--min-length", "4")
    first = _names(trained, *args, "--max-length", "7", "--unique")
    assert first == _names(trained, *args, "--max-length", "7", "--unique")
    assert len(first) == 40 and len(set(first)) == 40
    assert all(n.startswith("a") and "n" in n and "e" not in n and 4 <= len(n) <= 7 for n in first)


def test_output_file_holds_the_names_of_stdout_and_stdout_stays_clean(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    args = ("-n", "50", "--seed", "4", "--suffix", "a")
    out = tmp_path / "names.txt"
    assert cli("sample", "-c", trained, *args, "-o", out).stdout == ""
    assert out.read_text(encoding="utf-8").splitlines() == _names(trained, *args)
    fail_with("sample", "-c", trained, "-o", tmp_path / "missing" / "n.txt", fragments=("does not exist",))


def test_json_log_likelihoods_are_scores(trained) -> None:  # type: ignore[no-untyped-def]
    rows = json.loads(cli("sample", "-c", trained, "-n", "8", "--seed", "5", "--match", "[a-m]+", "--json").stdout)
    assert [set(row) for row in rows] == [{"name", "log_likelihood"}] * 8
    scored = json.loads(cli("score", "-c", trained, "--json", *[row["name"] for row in rows]).stdout)
    for row, score in zip(rows, scored):
        assert row["name"] == score["name"] and row["log_likelihood"] == pytest.approx(
            score["log_likelihood"], abs=1e-5
        )


def test_ranked_names_come_most_likely_first(trained) -> None:  # type: ignore[no-untyped-def]
    rows = json.loads(cli("sample", "-c", trained, "--ranked", "-n", "20", "--suffix", "n", "--json").stdout)
    values = [row["log_likelihood"] for row in rows]
    assert all(row["name"].endswith("n") for row in rows)
    assert all(a >= b - 1e-5 for a, b in zip(values, values[1:]))


def test_min_distance_and_like(trained, names_path) -> None:  # type: ignore[no-untyped-def]
    from rapidfuzz.distance import Levenshtein

    known = names_path.read_text(encoding="utf-8").split()
    names = _names(trained, "-n", "20", "--seed", "6", "--novel", "--min-distance", "2", "--max-length", "6")
    assert all(min(Levenshtein.distance(name, k) for k in known) >= 2 for name in names)
    liked = _names(
        trained, "-n", "20", "--seed", "6", "--novel", "--min-distance", "2", "--max-length", "6", "--like", "emma"
    )
    assert sorted(names, key=lambda n: Levenshtein.distance(n, "emma")) == liked  # stable: ties in draw order


def test_help_lists_the_constraints() -> None:
    text = cli("sample", "--help").stdout
    for option in ("--suffix", "--contains", "--without", "--match", "--ranked", "--json", "--output", "Levenshtein"):
        assert option in text
