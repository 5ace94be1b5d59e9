"""`bnnames export --format html` in a real headless browser (Debian's chromium, `--dump-dom`):
the page's next-character probabilities against Python's (1e-5), its constraints honoured, and its
names' frequencies against the exact conditional distribution, brute-forced in Python."""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from bnnames.export import html as page
from bnnames.inference import folded
from bnnames.storage.checkpoint import load_checkpoint, model_in_use
from tests.helpers import TINY, cli, fail_with, read_only_folder

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WAVENET = ("--preset", "wavenet", "--n-embd", "4", "--n-hidden", "8", "--steps", "200")


@pytest.fixture(scope="module")
def browser() -> str:
    found = next((path for path in map(shutil.which, BROWSERS) if path), None)
    if found is None:
        pytest.skip(f"no headless browser here (none of {', '.join(BROWSERS)} on PATH): apt-get install chromium")
    return found


def render(browser: str, path: Path, tmp_path: Path, **query: object) -> dict:
    """The page after load, for `?query`: its names, its status line's data, the probe's JSON."""
    url = path.resolve().as_uri() + "?" + "&".join(f"{k}={v}" for k, v in query.items())
    profile = tmp_path / f"profile-{random.getrandbits(32)}"
    dom = subprocess.run(
        [browser, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    ).stdout
    names = re.findall(r'<button class="name"[^>]*>([^<]*)</button>', dom)
    status = re.search(r'<div id="status"([^>]*)>([^<]*)<', dom)
    assert status is not None, dom[-2000:]
    data = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', status.group(1)))
    probe = re.search(r'<pre id="probe">([^<]*)</pre>', dom).group(1)
    return {"names": names, "data": data, "status": status.group(2), "probe": json.loads(probe) if probe else None}


def trained(tmp_path: Path, names: Path, *options: object) -> tuple[Path, Path]:
    ckpt, out = tmp_path / "m.safetensors", tmp_path / "m.html"
    cli("train", names, "-c", ckpt, *TINY, *options, "--device", "cpu")
    cli("export", "-c", ckpt, "-o", out)
    return ckpt, out


def python_probabilities(ckpt: Path, contexts: list[list[int]], temperature: float = 1.0) -> torch.Tensor:
    model, _ = model_in_use(load_checkpoint(ckpt))
    with torch.no_grad():
        logits = folded(model.eval())(torch.tensor(contexts)).double()
    return torch.softmax(logits / temperature, dim=1)  # (N, vocab)


@pytest.mark.parametrize("options", [(), ("--norm", "layer"), WAVENET], ids=["mlp", "layer", "wavenet"])
def test_page_probabilities_equal_pythons(browser, tmp_path, names_path, options):
    ckpt, out = trained(tmp_path, names_path, *options)
    names = ["emma", "olivia", "xzq", "a"]
    shown = render(browser, out, tmp_path, n=5, seed=1, probe=",".join(names))
    vocab, block = load_checkpoint(ckpt).vocab, load_checkpoint(ckpt).model_config.block_size
    for name in names:
        ids = vocab.encode(name) + [0]
        padded = [0] * block + ids
        expected = python_probabilities(ckpt, [padded[i : i + block] for i in range(len(ids))])
        got = torch.tensor(shown["probe"][name], dtype=torch.float64)
        assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5, rtol=0), name
    assert len(shown["names"]) == 5


def test_constraints_are_honoured_and_the_same_link_gives_the_same_names(browser, tmp_path, names_path):
    _, out = trained(tmp_path, names_path)
    query = {"n": 25, "seed": 3, "suffix": "ia", "prefix": "m", "min": 4, "max": 8, "temperature": 1.3}
    first = render(browser, out, tmp_path, **query)
    assert first["data"]["method"] == "exact" and len(first["names"]) == 25
    assert all(n.startswith("m") and n.endswith("ia") and 4 <= len(n) <= 8 for n in first["names"]), first["names"]
    assert render(browser, out, tmp_path, **query)["names"] == first["names"]
    assert render(browser, out, tmp_path, **{**query, "seed": 4})["names"] != first["names"]


def test_wavenet_rejects_and_says_when_its_tries_run_out(browser, tmp_path, names_path):
    _, out = trained(tmp_path, names_path, *WAVENET)
    shown = render(browser, out, tmp_path, n=20, seed=5, suffix="a", max=10)
    assert shown["data"]["method"] == "rejection" and len(shown["names"]) == 20
    assert all(n.endswith("a") and len(n) <= 10 for n in shown["names"])
    hopeless = render(browser, out, tmp_path, n=2, seed=5, suffix="qqqqqq", max=7)  # possible, never drawn
    assert hopeless["data"]["ran-out"] == "true" and "tries" in hopeless["status"]
    impossible = render(browser, out, tmp_path, n=2, seed=5, suffix="abcdefgh", max=7)
    assert "no name can meet" in impossible["status"] and impossible["names"] == []


@pytest.fixture
def abc_names(tmp_path: Path) -> Path:
    """Names over three letters: a vocabulary small enough to enumerate every constrained name."""
    rng = random.Random(0)
    names = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 5))) for _ in range(400)]
    path = tmp_path / "abc.txt"
    path.write_text("\n".join(names) + "\n")
    return path


def exact_distribution(ckpt: Path, suffix: str, low: int, high: int, temperature: float) -> dict[str, float]:
    """P(name | it ends with suffix, low <= len <= high), each step's distribution at `temperature`."""
    vocab, block = load_checkpoint(ckpt).vocab, load_checkpoint(ckpt).model_config.block_size
    names = [
        "".join(chars)
        for length in range(low, high + 1)
        for chars in itertools.product(vocab.chars, repeat=length)
        if "".join(chars).endswith(suffix)
    ]
    weights = {}
    for name in names:
        ids = vocab.encode(name) + [0]
        padded = [0] * block + ids
        p = python_probabilities(ckpt, [padded[i : i + block] for i in range(len(ids))], temperature)
        weights[name] = math.prod(p[i, x].item() for i, x in enumerate(ids))
    total = sum(weights.values())
    return {name: w / total for name, w in weights.items()}


@pytest.mark.parametrize("method", ["exact", "rejection"])
def test_names_follow_the_conditional_distribution(browser, tmp_path, abc_names, method):
    ckpt, out = trained(tmp_path, abc_names, "--block-size", "2")
    expected = exact_distribution(ckpt, "aa", 3, 5, 0.8)  # "aa" overlaps itself: KMP's fallback
    counts: dict[str, int] = {}
    for seed in (1, 2, 3):  # 3000 names, seeded: the same verdict on every run
        query = {"n": 1000, "seed": seed, "suffix": "aa", "min": 3, "max": 5, "temperature": 0.8}
        if method == "rejection":
            query["method"] = "rejection"
        shown = render(browser, out, tmp_path, **query)
        assert shown["data"]["method"] == method
        for name in shown["names"]:
            counts[name] = counts.get(name, 0) + 1
    drawn = sum(counts.values())
    assert drawn == 3000 and set(counts) <= set(expected)
    # chi-square over the names expected at least 5 times, the rest pooled into one bin
    big = [name for name, p in expected.items() if p * drawn >= 5]
    observed = [counts.get(name, 0) for name in big] + [drawn - sum(counts.get(name, 0) for name in big)]
    wanted = [expected[name] * drawn for name in big] + [drawn * (1 - sum(expected[name] for name in big))]
    pairs = [(o, e) for o, e in zip(observed, wanted) if e > 0]
    chi2, df = sum((o - e) ** 2 / e for o, e in pairs), len(pairs) - 1
    assert chi2 < df + 5 * math.sqrt(2 * df), (chi2, df)  # about p < 1e-4 for these df
    tv = 0.5 * sum(abs(counts.get(n, 0) / drawn - p) for n, p in expected.items())
    assert tv < 0.06, tv


def test_bad_exports_are_one_line_and_write_nothing(tmp_path, names_path, monkeypatch):
    ckpt = tmp_path / "m.safetensors"
    cli("train", names_path, "-c", ckpt, *TINY, "--device", "cpu")
    fail_with("export", "-c", ckpt, "--format", "pdf", "-o", tmp_path / "a.pdf", fragments=("unknown --format 'pdf'",))
    fail_with("export", "-c", ckpt, "-o", tmp_path / "a.txt", fragments=("--format onnx or html",))
    blocked = read_only_folder(tmp_path) / "names.html"
    fail_with("export", "-c", ckpt, "-o", blocked, fragments=("cannot write",))
    monkeypatch.setattr(page, "PAGE_MAX_PARAMETERS", 100)
    line = fail_with("export", "-c", ckpt, "-o", tmp_path / "big.html", fragments=("too many for a web page",))
    assert "at most 100" in line and re.search(r"has [\d,]+ parameters", line)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["m.safetensors"]
