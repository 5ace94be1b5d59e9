"""Batched sampling: the context table equals the model, and draws follow its probabilities."""

from __future__ import annotations

import pytest
import torch

import bnnames.sample as sample_module
from bnnames.config import ModelConfig, SampleConfig
from bnnames.data import Vocab
from bnnames.errors import ConfigError
from bnnames.model import create_model
from bnnames.sample import Predictor, TablePredictor, _sample_batch, draw_batches, sample_names

VOCAB = Vocab(tuple("abcdefghijklmnopqrstuvwxyz"))
CPU = torch.device("cpu")


def _model():  # type: ignore[no-untyped-def]
    model = create_model(ModelConfig(out_scale=1.0), VOCAB.size, torch.Generator().manual_seed(8))
    return model.eval()  # out_scale 1: confident, uneven distributions, unlike a fresh model's


@pytest.mark.parametrize("config", [SampleConfig(), SampleConfig(temperature=0.7, top_k=5)], ids=["plain", "top-k"])
def test_the_context_table_holds_the_models_distributions(config: SampleConfig) -> None:
    model = _model()
    table, direct = TablePredictor(model, VOCAB.size, 3, config, CPU), Predictor(model, config, CPU)
    contexts = torch.randint(0, VOCAB.size, (300, 3), generator=torch.Generator().manual_seed(1))
    ids = (contexts * torch.tensor([27 * 27, 27, 1])).sum(1)
    with torch.inference_mode():
        torch.testing.assert_close(table.cdf(ids), direct.cdf(contexts), rtol=0, atol=1e-6)
        torch.testing.assert_close(
            table.cdf(ids.flip(0)), direct.cdf(contexts.flip(0)), rtol=0, atol=1e-6
        )  # remembered
        assert torch.equal(
            table.advance(ids, contexts[:, 0]), (contexts[:, 1:] * torch.tensor([729, 27])).sum(1) + contexts[:, 0]
        )


def test_first_characters_are_drawn_with_the_models_probabilities() -> None:
    model = _model()
    config = SampleConfig()
    with torch.inference_mode():
        probs = torch.softmax(model(torch.zeros(1, 3, dtype=torch.long)).double(), dim=1)[0]
        for predictor in (TablePredictor(model, VOCAB.size, 3, config, CPU), Predictor(model, config, CPU)):
            first = _sample_batch(predictor, [0, 0, 0], 100_000, 1, torch.Generator().manual_seed(3))[:, 0]
            freq = torch.bincount(first, minlength=VOCAB.size).double() / first.numel()
            assert (freq - probs).abs().max() < 0.005  # 4 standard errors at most
            assert freq[probs == 0].sum() == 0


def test_top_k_one_is_greedy_decoding() -> None:
    model = _model()
    greedy, context = "", [0, 0, 0]
    with torch.inference_mode():
        for _ in range(10):
            ix = int(model(torch.tensor([context])).argmax())
            assert ix != 0  # this model's greedy name never ends: it repeats "bspofy" for ever
            greedy, context = greedy + VOCAB.chars[ix - 1], context[1:] + [ix]
    config = SampleConfig(count=50, top_k=1, max_length=10, seed=0)
    with torch.inference_mode():
        for predictor in (TablePredictor(model, VOCAB.size, 3, config, CPU), Predictor(model, config, CPU)):
            ids = _sample_batch(predictor, [0, 0, 0], 50, 10, torch.Generator())
            assert [VOCAB.decode([i for i in row if i]) for row in ids.tolist()] == [greedy] * 50
    # --max-length conditions, it never cuts: a name that cannot end within 10 characters is no name
    with pytest.raises(ConfigError, match="names of 1 to 10 characters have probability 0 under this model"):
        sample_names(model, VOCAB, 3, config, torch.Generator())


def test_same_seed_same_names_and_never_an_empty_or_excluded_one() -> None:
    model = _model()
    config = SampleConfig(count=300, max_length=12)
    first = sample_names(model, VOCAB, 3, config, torch.Generator().manual_seed(5))
    assert first == sample_names(model, VOCAB, 3, config, torch.Generator().manual_seed(5))
    assert first != sample_names(model, VOCAB, 3, config, torch.Generator().manual_seed(6))
    banned = frozenset(first[:100])
    again = sample_names(model, VOCAB, 3, config, torch.Generator().manual_seed(5), exclude=banned)
    assert all(name and name not in banned and len(name) <= 12 for name in again)


def _drawn_all_then_filtered(model, config: SampleConfig, seed: int, exclude: frozenset[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """The sampler as it was before streaming: every batch drawn, then the names kept in order
    (one step past max_length: a row that has not ended by then is too long, drawn again, never cut)."""
    generator = torch.Generator().manual_seed(seed)
    predictor = TablePredictor(model, VOCAB.size, 3, config, CPU)
    context = ([0] * 3 + VOCAB.encode(config.prefix))[-3:]
    names: list[str] = []
    steps = config.max_length - len(config.prefix) + 1
    while len(names) < config.count:
        with torch.inference_mode():
            ids = _sample_batch(predictor, context, min(config.batch, 2 * config.count), steps, generator)
        for row in ids.tolist():
            name = config.prefix + VOCAB.decode(row[: row.index(0)] if 0 in row else row)
            if 0 in row and name and name not in exclude and len(names) < config.count:
                names.append(name)
    return names


def test_streamed_batches_are_the_names_drawn_all_at_once_in_the_same_order(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model, config = _model(), SampleConfig(count=700, batch=64, max_length=12)
    exclude = frozenset(_drawn_all_then_filtered(model, SampleConfig(count=40, batch=64), 9, frozenset()))
    expected = _drawn_all_then_filtered(model, config, 5, exclude)
    drawn: list[int] = []
    real = sample_module._sample_batch
    monkeypatch.setattr(sample_module, "_sample_batch", lambda *a: drawn.append(1) or real(*a))
    batches = draw_batches(model, VOCAB, 3, config, torch.Generator().manual_seed(5), exclude, CPU)
    first = next(batches)
    assert len(drawn) == 1 and 0 < len(first) <= 64  # the first batch comes out before the second is drawn
    streamed = first + [name for batch in batches for name in batch]
    assert streamed == expected
    assert len(drawn) > 10  # many batches: the order across them was checked


@pytest.mark.parametrize(
    ("top_k", "top_p", "kept"),
    [
        (None, 0.79, [0.5, 0.3]),
        (None, 0.81, [0.5, 0.3, 0.15]),
        (None, 0.4, [0.5]),
        (2, 0.9, [0.5, 0.3]),
        (None, 1.0, None),
    ],
)
def test_top_p_keeps_the_fewest_likeliest_characters_that_reach_p(top_k, top_p, kept) -> None:  # type: ignore[no-untyped-def]
    from bnnames.predict import next_probs

    probs = torch.tensor([[0.05, 0.3, 0.5, 0.15]], dtype=torch.float64)  # order shuffled: sorting is the point
    out = next_probs(probs.log(), SampleConfig(top_k=top_k, top_p=top_p))[0]
    expected = probs[0] if kept is None else torch.tensor([p if p in kept else 0.0 for p in probs[0].tolist()]).double()
    torch.testing.assert_close(out, expected / expected.sum())
