"""Constrained sampling and --ranked against brute force: every name of a tiny model enumerated
(3 letters, context 2), its probability the product of the layer-by-layer model's predictions."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

import bnnames.sample as sample_module
from bnnames.config import ModelConfig, SampleConfig
from bnnames.data import BOUNDARY, Vocab
from bnnames.model import create_model
from bnnames.predict import Predictor, next_probs
from bnnames.sample import sample_names
from bnnames.score import score_names
from bnnames.storage.checkpoint import load_checkpoint, model_in_use
from tests.helpers import TINY, cli

VOCAB = Vocab(("a", "b", "c"))
LONGEST = 6
CONSTRAINED = [
    SampleConfig(suffix="a", contains=("b",), max_length=LONGEST),
    SampleConfig(match="(ab|c)+a?", min_length=3, max_length=LONGEST, temperature=0.7),
    SampleConfig(prefix="c", without=("cc",), max_length=5, top_k=2),
    SampleConfig(contains=("ba",), min_length=2, max_length=LONGEST, top_p=0.8),
    SampleConfig(max_length=3),  # no constraint but the length: rows too long are drawn again, never cut
]


def _tiny():  # type: ignore[no-untyped-def]
    model = create_model(
        ModelConfig(block_size=2, n_embd=3, n_hidden=8, out_scale=1.0), VOCAB.size, torch.Generator().manual_seed(3)
    )
    return model.eval()


def _satisfies(name: str, config: SampleConfig) -> bool:
    return (
        config.min_length <= len(name) <= config.max_length
        and name.startswith(config.prefix)
        and name.endswith(config.suffix)
        and all(c in name for c in config.contains)
        and not any(w in name for w in config.without)
        and (config.match is None or re.fullmatch(config.match, name) is not None)
    )


def _brute_force(model, config: SampleConfig) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Every name of 1..LONGEST characters with its probability under `config` (temperature,
    top-k, top-p), the prefix's own characters given (not drawn), from the unfolded model."""
    contexts = torch.tensor(list(itertools.product(range(VOCAB.size), repeat=2)))  # (16, 2)
    with torch.no_grad():
        probs = next_probs(model(contexts), config)  # (16, V)
    table = {tuple(c): p for c, p in zip(contexts.tolist(), probs.tolist())}
    out = {}
    for length in range(1, LONGEST + 1):
        for letters in itertools.product(VOCAB.chars, repeat=length):
            name = "".join(letters)
            ids = [BOUNDARY, BOUNDARY, *VOCAB.encode(name), BOUNDARY]
            given = len(config.prefix) if name.startswith(config.prefix) else 0
            out[name] = math.prod(table[tuple(ids[i : i + 2])][ids[i + 2]] for i in range(given, len(ids) - 2))
    return out


def _chi_square_bound(observed: Counter, expected: dict[str, float], draws: int) -> tuple[float, float]:
    """Pearson's statistic over the names expected at least 5 times (the rest pooled), and a bound
    it exceeds with probability below ~1e-6 when the draws follow `expected`: df + 7 sqrt(2 df)."""
    big = [name for name, p in expected.items() if p * draws >= 5]
    rest_expected = draws - sum(expected[name] * draws for name in big)
    rest_observed = draws - sum(observed[name] for name in big)
    stat = sum((observed[name] - expected[name] * draws) ** 2 / (expected[name] * draws) for name in big)
    if rest_expected >= 5:
        stat += (rest_observed - rest_expected) ** 2 / rest_expected
    df = len(big) - (rest_expected < 5)
    return stat, df + 7 * math.sqrt(2 * df)


@pytest.mark.parametrize("config", CONSTRAINED, ids=["suffix", "match", "prefix", "topp", "max-length"])
@pytest.mark.parametrize("method", ["exact", "rejection"])
def test_constrained_draws_follow_the_brute_force_conditional_distribution(config, method, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model = _tiny()
    if method == "rejection":  # the wavenet's way: every context through the network, rows rejected
        monkeypatch.setattr(sample_module, "make_predictor", lambda m, v, b, c, d: Predictor(m, c, d))
    everything = _brute_force(model, config)
    allowed = {name: p for name, p in everything.items() if _satisfies(name, config)}
    total = sum(allowed.values())
    expected = {name: p / total for name, p in allowed.items()}
    draws = 60_000 if method == "exact" else 15_000
    config = SampleConfig(**{**config.__dict__, "count": draws, "seed": 0})
    names = sample_names(model, VOCAB, 2, config, torch.Generator().manual_seed(1))
    assert len(names) == draws and all(_satisfies(name, config) for name in names)
    stat, bound = _chi_square_bound(Counter(names), expected, draws)
    assert stat < bound, (stat, bound)


def test_the_backward_table_holds_the_brute_force_probability_of_the_constraints() -> None:
    from bnnames import conditional
    from bnnames.constraints import compile_constraints
    from bnnames.predict import TablePredictor

    model = _tiny()
    for config in CONSTRAINED:
        allowed = sum(p for name, p in _brute_force(model, config).items() if _satisfies(name, config))
        automaton = compile_constraints(config, VOCAB)
        predictor = TablePredictor(model, VOCAB.size, 2, config, torch.device("cpu"))
        with torch.inference_mode():
            probs = predictor.probabilities()
        table = conditional.backward(probs, automaton, config.min_length, config.max_length)
        prefix = VOCAB.encode(config.prefix)
        state = automaton.start
        for i in prefix:
            state = int(automaton.step[state, i])
        start = conditional.Start(predictor.key(([0, 0] + prefix)[-2:]), state, len(prefix))
        assert table.at(start) == pytest.approx(allowed, rel=1e-5)


@pytest.mark.parametrize(
    "config",
    [SampleConfig(max_length=LONGEST), SampleConfig(suffix="a", contains=("b",), min_length=3, max_length=LONGEST)],
    ids=["plain", "constrained"],
)
@pytest.mark.parametrize("method", ["table", "network"])
def test_ranked_names_are_the_brute_force_order_and_their_scores(config, method, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model = _tiny()
    if method == "network":  # the wavenet's way: heuristic 0
        monkeypatch.setattr("bnnames.ranked.make_predictor", lambda m, v, b, c, d: Predictor(m, c, d))
    everything = _brute_force(model, config)
    allowed = sorted((name for name in everything if _satisfies(name, config)), key=lambda n: -everything[n])
    ranked = sample_names(model, VOCAB, 2, SampleConfig(**{**config.__dict__, "count": 40, "ranked": True}), None)
    assert ranked == allowed[:40]
    scores = score_names(model, VOCAB, 2, ranked)
    assert scores == pytest.approx([math.log(everything[name]) for name in ranked], abs=1e-5)


def test_unconstrained_draws_are_the_names_of_before(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Digests of the names main (5208aaa) drew for these settings with a seed, recorded before
    the constrained samplers came in (max_length 200: no name there came near it, so no cut)."""
    import hashlib

    from tests.test_sample_fast import VOCAB as LETTERS
    from tests.test_sample_fast import _model

    model = _model()
    for config, digest in [
        (SampleConfig(count=500, seed=0, max_length=200), "3eb710c06cdf948a"),
        (SampleConfig(count=300, prefix="ka", top_k=8, temperature=0.8, max_length=200), "a6eb40df903097f1"),
        (SampleConfig(count=2000, batch=256, max_length=200), "8ef61884f712c9b1"),
    ]:
        names = sample_names(model, LETTERS, 3, config, torch.Generator().manual_seed(11))
        assert hashlib.sha256("\n".join(names).encode()).hexdigest()[:16] == digest


@pytest.fixture(scope="module")
def trained(tmp_path_factory, names_path) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("conditional") / "c.safetensors"
    cli("train", names_path, *TINY, "--steps", "400", "-c", path)
    return path


def test_exact_sampler_matches_rejection_on_a_trained_model(trained, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Two samples, 20,000 names each, of names ending in 'a' with an 'n' in them: a two-sample
    chi-square over the names drawn at least 10 times in all (the rest pooled)."""
    ckpt = load_checkpoint(trained)
    model = model_in_use(ckpt)[0]
    config = SampleConfig(count=20_000, suffix="a", contains=("n",), max_length=8)
    exact = Counter(sample_names(model, ckpt.vocab, 3, config, torch.Generator().manual_seed(1)))
    monkeypatch.setattr(sample_module, "EXACT_MAX_BYTES", 0)  # no table fits: rejection sampling
    rejected = Counter(sample_names(model, ckpt.vocab, 3, config, torch.Generator().manual_seed(2)))
    big = [name for name in exact.keys() | rejected.keys() if exact[name] + rejected[name] >= 10]
    stat = sum((exact[n] - rejected[n]) ** 2 / (exact[n] + rejected[n]) for n in big)
    rest_a = 20_000 - sum(exact[n] for n in big)
    rest_b = 20_000 - sum(rejected[n] for n in big)
    if rest_a + rest_b >= 10:
        stat += (rest_a - rest_b) ** 2 / (rest_a + rest_b)
    df = len(big)
    assert df > 50  # many distinct names: the test has power
    assert stat < df + 7 * math.sqrt(2 * df), (stat, df)


def test_unique_and_novel_counts_are_the_brute_force_names_of_nonzero_probability() -> None:
    from bnnames.errors import ConfigError

    model = _tiny()
    config = SampleConfig(max_length=4, top_k=3, suffix="a", unique=True)
    everything = _brute_force(model, config)
    allowed = [name for name in everything if _satisfies(name, config)]
    positive = {name for name in allowed if everything[name] > 0}  # 11 of the 40 that satisfy them
    impossible = [name for name in allowed if everything[name] == 0][:10]  # top-k never draws these
    known = frozenset(sorted(positive)[::2] + impossible + ["b"])
    available = len(positive - known)
    assert 0 < available != len(positive) - len(known & set(allowed))  # counting the impossible ones says less
    too_many = SampleConfig(**{**config.__dict__, "count": available + 1})
    with pytest.raises(ConfigError, match=f"there are only {available} different names of 1 to 4 characters"):
        sample_names(model, VOCAB, 2, too_many, torch.Generator(), exclude=known)
