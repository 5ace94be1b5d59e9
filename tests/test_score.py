"""`bnnames score`: per-name log-likelihoods that add up to `bnnames eval`, stdin, order, unknown characters."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bnnames.data import BOUNDARY, load_dataset
from bnnames.storage.checkpoint import choose_weights, load_checkpoint
from tests.helpers import TINY, assert_one_line_error, cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory, names_path) -> Path:
    """A tiny model of the standard file, calibrated (so running and calibrated statistics differ)."""
    path = tmp_path_factory.mktemp("score") / "c.safetensors"
    cli("train", names_path, *TINY, "-c", path)
    cli("calibrate", "-c", path)
    return path


def _scores(path: Path, *args: str, stdin: str | None = None, code: int = 0) -> list[dict]:
    return json.loads(cli("score", *args, "--json", "-c", path, input=stdin, code=code).stdout)


@pytest.mark.parametrize("stats", [[], ["--stats", "running"]], ids=["calibrated", "running"])
def test_val_names_weighted_by_length_plus_one_average_to_eval(trained, names_path, stats):
    val = load_dataset(names_path, 42, 3).splits.val
    scores = _scores(trained, "-", *stats, stdin="\n".join(val))
    assert [s["name"] for s in scores] == val  # every name, duplicates included, in order
    weights = [len(s["name"]) + 1 for s in scores]
    average = sum(s["loss"] * w for s, w in zip(scores, weights)) / sum(weights)
    evaluated = json.loads(cli("eval", "--split", "val", "--json", "-c", trained, *stats).stdout)
    assert evaluated["examples"] == sum(weights)
    assert abs(average - evaluated["loss"]) < 1e-6
    assert all(s["in_names_file"] and s["split"] in ("train", "val") for s in scores)


def test_a_name_scores_the_sum_of_its_predictions_in_the_layer_by_layer_model(trained):
    """The direct computation: log-softmax of the unfolded eval-mode model at each of n + 1 positions."""
    ckpt = load_checkpoint(trained)
    model, _ = choose_weights(ckpt)  # the best weights, as eval and score use
    model.eval()
    model.choose_stats()
    ids = ckpt.vocab.encode("emma")
    padded = [BOUNDARY] * 3 + ids  # the start context, then each character
    contexts = torch.tensor([padded[i : i + 3] for i in range(len(ids) + 1)])  # (5, 3)
    targets = torch.tensor([*ids, BOUNDARY])  # (5,): the characters, then the end token
    with torch.no_grad():
        expected = F.log_softmax(model(contexts).double(), dim=1)[torch.arange(5), targets].sum().item()
    (score,) = _scores(trained, "emma")
    assert abs(score["log_likelihood"] - expected) < 1e-5
    assert abs(score["loss"] + expected / 5) < 1e-5  # nats per character: the end token is the fifth


def test_stdin_and_arguments_keep_their_order_in_json(trained):
    scores = _scores(trained, "ava", "-", "bob", stdin="emma\n\n  zyxw \n")
    assert [s["name"] for s in scores] == ["ava", "emma", "zyxw", "bob"]  # blank lines skipped, names stripped
    alone = {name: _scores(trained, name)[0] for name in ("ava", "zyxw")}
    assert scores[0] == alone["ava"] and scores[2] == alone["zyxw"]  # a name's score does not depend on the others
    assert scores[2]["in_names_file"] is False and scores[2]["split"] is None
    assert scores[2]["loss"] > scores[1]["loss"]  # "zyxw" is less likely than "emma", per character


def test_an_unknown_character_is_reported_in_place_and_the_exit_code_is_1_at_the_end(trained):
    result = cli("score", "emma", "zoë", "ava", "--json", "-c", trained, code=1)
    scores = json.loads(result.stdout)
    assert [s["name"] for s in scores] == ["emma", "zoë", "ava"]
    assert scores[1]["loss"] is None and scores[1]["log_likelihood"] is None
    assert "never saw: 'ë'" in scores[1]["error"]
    assert all(math.isfinite(s["loss"]) for s in (scores[0], scores[2]))
    assert_one_line_error(result, "could not score 'zoë'", "the other names were scored")
    table = cli("score", "emma", "zoë", "-c", trained, code=1)
    assert "emma" in table.stdout and "zoë" in table.stdout and "'ë'" in table.stdout  # the reason, in its row


def test_no_names_at_all_is_one_line(trained):
    result = cli("score", "-", "-c", trained, input="\n  \n", code=1)
    assert_one_line_error(result, "no names to score")


def test_probability_is_exp_of_the_log_likelihood_in_json_and_in_the_table(trained):
    names = ["emma", "ava", "zyxw", "zoë", "elizabeth"]
    scores = _scores(trained, *names, code=1)
    for s in scores:
        if s["log_likelihood"] is None:
            assert s["probability"] is None
        else:
            assert s["probability"] == pytest.approx(math.exp(s["log_likelihood"]), rel=1e-12)
            assert 0 < s["probability"] < 1
    rows = {line.split()[0]: line.split() for line in cli("score", *names, "-c", trained, code=1).stdout.splitlines()}
    assert rows["name"][:4] == ["name", "log-likelihood", "(nats)", "probability"]
    for s in scores:
        shown = "-" if s["probability"] is None else f"{s['probability']:.2g}"
        assert rows[s["name"]][2] == shown, rows[s["name"]]


@pytest.mark.parametrize("sort", ["likelihood", "loss"])
def test_sort_orders_by_the_scores_and_puts_names_not_scored_last(trained, sort):
    names = ["elizabeth", "zoë", "ava", "zyxw", "a", "emma", "ava"]
    given = _scores(trained, *names, code=1)
    scored = [s for s in given if s["loss"] is not None]
    if sort == "likelihood":  # most likely first
        expected = sorted(scored, key=lambda s: -s["log_likelihood"])
    else:  # fewest nats per character first
        expected = sorted(scored, key=lambda s: s["loss"])
    expected += [s for s in given if s["loss"] is None]
    assert _scores(trained, *names, "--sort", sort, code=1) == expected
    assert expected != given  # the test would see a sort that did nothing
    table = cli("score", *names, "--sort", sort, "-c", trained, code=1).stdout.splitlines()[1:]
    assert [line.split()[0] for line in table] == [s["name"] for s in expected]
