"""The Python API against the CLI: the same names for a seed, the same scores, ranks and losses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bnnames
from bnnames.errors import ConfigError
from tests.helpers import cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, names_path: Path) -> tuple[Path, Path]:
    """A tiny model trained through the API on a copy of 2,000 standard names: (checkpoint, names)."""
    folder = tmp_path_factory.mktemp("api")
    names = folder / "names.txt"
    names.write_text("\n".join(names_path.read_text().split()[:2000]) + "\n")
    heard: list[tuple[int, float, float]] = []
    model = bnnames.train(
        names, folder / "tiny.safetensors", n_hidden=16, n_embd=4, steps=400, on_progress=lambda *r: heard.append(r)
    )
    steps = [step for step, _, _ in heard]  # every report, as the CLI's progress hears them
    assert {100, 200, 300, 400} <= set(steps) and steps == sorted(steps) and steps[-1] == 400
    assert isinstance(model, bnnames.Model) and model.train_config.steps == 400 and model.labels == ()
    return model.path, names


def test_training_through_the_api_prints_nothing(tmp_path: Path, names_path: Path, capfd) -> None:
    names = tmp_path / "names.txt"
    names.write_text("\n".join(names_path.read_text().split()[:300]) + "\n")
    bnnames.train(names, tmp_path / "quiet.safetensors", n_hidden=8, n_embd=3, steps=100)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize(
    "options, flags",
    [
        ({}, []),
        ({"suffix": "a", "min_length": 4, "unique": True}, ["--suffix", "a", "--min-length", "4", "--unique"]),
        (
            {"contains": ["an"], "temperature": 0.8, "top_k": 5},
            ["--contains", "an", "--temperature", "0.8", "--top-k", "5"],
        ),
        ({"novel": True, "prefix": "m"}, ["--novel", "--prefix", "m"]),
    ],
)
def test_the_same_seed_and_options_give_the_cli_names(trained, options: dict, flags: list[str]) -> None:
    path, _ = trained
    names = bnnames.load(path).sample(12, seed=7, **options)
    printed = cli("sample", "-c", path, "-n", 12, "--seed", 7, *flags).stdout.split()
    assert names == printed and len(names) == 12


def test_scores_ranks_and_losses_equal_the_clis(trained) -> None:
    path, _ = trained
    model = bnnames.load(path)
    names = ["emma", "zzzq", "ava"]
    by_cli = json.loads(cli("score", "-c", path, "--json", *names).stdout)
    assert [s.log_likelihood for s in model.score(names)] == [row["log_likelihood"] for row in by_cli]
    ranked = json.loads(cli("sample", "-c", path, "-n", 5, "--ranked", "--suffix", "n", "--json").stdout)
    assert [(s.name, s.log_likelihood) for s in model.ranked(5, suffix="n")] == [
        (row["name"], row["log_likelihood"]) for row in ranked
    ]
    lls = [s.log_likelihood for s in model.ranked(5, suffix="n")]
    assert lls == sorted(lls, reverse=True)
    for split in ("train", "val", "test"):
        assert model.evaluate(split) == json.loads(cli("eval", "-c", path, "--split", split, "--json").stdout)["loss"]


def test_sample_and_score_work_when_the_names_file_is_gone(trained, tmp_path: Path) -> None:
    path, names = trained
    moved = tmp_path / "moved.safetensors"
    shutil.copy(path, moved)
    hidden = names.with_suffix(".away")
    names.rename(hidden)
    try:
        model = bnnames.load(moved)
        assert len(model.sample(5, seed=1)) == 5
        assert model.score(["emma"])[0].in_names_file is None  # unknown without the file, not an error
        assert bnnames.load(moved, data=hidden).score(["emma"])[0].in_names_file is not None
    finally:
        hidden.rename(names)


def test_importing_the_package_imports_no_torch() -> None:
    code = "import sys, bnnames; assert 'torch' not in sys.modules; bnnames.load; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_a_bad_option_is_the_clis_error(trained) -> None:
    path, _ = trained
    model = bnnames.load(path)
    with pytest.raises(ConfigError, match="--min-length 10 is above --max-length 5"):
        model.sample(3, min_length=10, max_length=5)
    with pytest.raises(AttributeError):
        bnnames.no_such_thing  # noqa: B018
