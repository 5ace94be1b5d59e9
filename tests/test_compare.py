"""`bnnames compare`: the table's numbers are eval's, the figures are drawn, mismatches are said."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from PIL import Image

from bnnames.storage.checkpoint import load_checkpoint, save_checkpoint
from tests.helpers import cli, fail_with

TINY_RUN = ("--n-hidden", "8", "--n-embd", "3", "--steps", "300", "--device", "cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, names_path) -> dict[str, Path]:
    """Three tiny runs on the standard file (BatchNorm calibrated, paper; BatchNorm, lecture, with a
    diagnostics recording; no normalisation) and one checkpoint written before histories."""
    folder = tmp_path_factory.mktemp("runs")
    paths = {name: folder / f"{name}.safetensors" for name in ("bn", "lecture", "none", "old")}
    cli("train", names_path, "-c", paths["bn"], *TINY_RUN)
    cli("calibrate", "-c", paths["bn"], "--device", "cpu")
    cli("train", names_path, "-c", paths["lecture"], *TINY_RUN, "--bn-style", "lecture", "--diagnostics-every", "100")
    cli("train", names_path, "-c", paths["none"], *TINY_RUN, "--norm", "none")
    old = load_checkpoint(paths["none"])
    save_checkpoint(paths["old"], dataclasses.replace(old, history=None))  # as bnnames wrote it before
    return paths


def _json(*paths: Path, names: tuple[str, ...] = ()) -> dict:
    flags = [arg for name in names for arg in ("--name", name)]
    return json.loads(cli("compare", *paths, *flags, "--json", "--device", "cpu").stdout)


def test_the_losses_are_exactly_evals(runs):
    data = _json(runs["bn"], runs["lecture"], runs["none"])
    by_label = {run["label"]: run for run in data["runs"]}
    assert list(by_label) == ["bn", "lecture", "none"] and data["warnings"] == []
    for label, stats in [("bn", "running"), ("bn", "calibrated"), ("lecture", "running"), ("none", None)]:
        flags = ("--stats", stats) if stats else ()
        rows = json.loads(cli("eval", "-c", runs[label], "--split", "all", *flags, "--json").stdout)
        assert by_label[label]["losses"][stats or "running"] == {row["split"]: row["loss"] for row in rows}
    assert by_label["lecture"]["losses"]["calibrated"] is None  # not calibrated: said, not made up
    assert by_label["none"]["stats"] == "none" and list(by_label["none"]["losses"]) == ["running"]
    assert by_label["none"]["model_config"]["norm"] == "none"
    ckpt = load_checkpoint(runs["bn"])
    assert by_label["bn"]["parameters"] == sum(p.numel() for p in ckpt.model.parameters())
    assert by_label["bn"]["best_val"] == {"step": ckpt.curve.best.step, "val": ckpt.curve.best.val}
    assert len(by_label["bn"]["history"]["points"]) > 15
    layers = by_label["lecture"]["health"]["layers"]
    assert by_label["lecture"]["health"]["recorded"] and layers[0]["units"] == 8 and 0 <= layers[0]["dead"] <= 8


def test_the_table_fits_80_columns_and_an_old_checkpoint_says_not_recorded(runs):
    result = cli("compare", runs["bn"], runs["lecture"], runs["old"], "--device", "cpu", env={"COLUMNS": "80"})
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    time_row = next(line for line in lines if "train time" in line)
    assert "not recorded" in time_row and " s " in time_row + " "
    for figure in ("val − train", "tanh 1 saturated", "tanh 1 dead units", "hidden 1 update:data"):
        assert figure in result.stdout
    # bn calibrated, lecture not, old (no normalisation) has no BatchNorm
    calibrated = next(line for line in lines if line.strip().startswith("calibrated "))
    assert calibrated.split()[1:] == ["full", "no", "no", "BN"]  # (a pipe: columns of spaces)


def test_out_writes_nonempty_figures_and_a_page(runs, tmp_path):
    out = tmp_path / "figures"
    cli("compare", runs["bn"], runs["lecture"], runs["none"], "--out", out, "--device", "cpu")
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["activations.png", "loss.png", "update_ratio.png"]  # lecture was recorded
    for name in pngs:
        with Image.open(out / name) as image:
            assert image.width > 300 and image.height > 200
            colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is not None and len(colours) > 10  # something drawn, not a blank canvas
    page = (out / "index.md").read_text()
    assert all(f"]({name})" in page for name in pngs) and "| val − train |" in page


def test_other_data_is_compared_with_a_warning(runs, small_names, tmp_path):
    other = tmp_path / "other.safetensors"
    cli("train", small_names, "-c", other, *TINY_RUN)
    result = cli("compare", runs["bn"], other, "--name", "standard", "--name", "small", "--device", "cpu")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "different vocabularies" in warnings[0] and "not comparable" in warnings[0]
    assert "standard" in result.stdout and "small" in result.stdout


def test_missing_or_corrupt_files_and_wrong_names_are_one_line(runs, tmp_path):
    fail_with("compare", runs["bn"], tmp_path / "gone.safetensors", fragments=("does not exist",))
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(runs["bn"].read_bytes()[:-100])
    fail_with("compare", runs["bn"], corrupt, fragments=("corrupt or truncated",))
    fail_with("compare", runs["bn"], runs["none"], "--name", "one", fragments=("--name was given 1 times",))
    fail_with("compare", runs["bn"], fragments=("at least two checkpoints",))
