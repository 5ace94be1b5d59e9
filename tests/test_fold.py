"""Folded BatchNorm inference against the layer-by-layer eval-mode model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bnnames import inference
from bnnames.calibrate import calibrate
from bnnames.config import ModelConfig
from bnnames.evaluate import split_loss
from bnnames.inference import Folded, folded
from bnnames.model import Dropout, Layer, Linear, NamesModel, create_model

CONFIGS = [
    ModelConfig(),
    ModelConfig(bn_style="lecture"),
    ModelConfig(norm="none"),
    ModelConfig(n_layers=3, n_hidden=40, block_size=5),
    ModelConfig(arch="wavenet", block_size=8, n_layers=3, n_embd=4, n_hidden=16),
    ModelConfig(arch="wavenet", block_size=4, n_layers=2, n_embd=3, n_hidden=8, dropout=0.2, norm="none"),
]


def _trained_looking(config: ModelConfig) -> NamesModel:
    """A model whose BatchNorm gains, shifts and statistics are far from their initial values."""
    g = torch.Generator().manual_seed(11)
    model = create_model(config, 30, g)
    with torch.no_grad():
        for bn in model.batch_norms():
            bn.weight.copy_(torch.rand(bn.weight.shape, generator=g) * 2 + 0.2)
            bn.bias.copy_(torch.randn(bn.bias.shape, generator=g))
            bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=g) * 3)
            spread = bn.inference_stats()[1]
            spread.copy_(torch.rand(spread.shape, generator=g) * 4 + 0.1)
    return model.eval()


@pytest.mark.parametrize("config", CONFIGS, ids=["paper", "lecture", "no-norm", "deep", "wavenet", "wavenet-plain"])
def test_folded_logits_equal_the_layer_by_layer_model(config: ModelConfig) -> None:
    model = _trained_looking(config)
    x = torch.randint(0, 30, (500, config.block_size), generator=torch.Generator().manual_seed(2))
    net = folded(model)
    with torch.inference_mode():
        expected, got = model(x), net(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    linears = sum(isinstance(layer, Linear) for layer in net.layers)
    dropouts = sum(isinstance(layer, Dropout) for layer in model.layers)
    assert len(net.layers) == len(model.layers) - len(model.batch_norms()) - dropouts
    assert linears == config.n_layers + 1


def test_every_prefix_of_the_wavenet_keeps_its_positions(monkeypatch) -> None:
    """Calibration runs the layers before each BatchNorm: (N, T', C) while positions remain, each
    distinct group of positions computed once (a Linear after a merge as a sum over its parts
    where that is cheaper), equal to the layer-by-layer model."""
    merged, merged_linear = [], inference._merged_linear
    monkeypatch.setattr(inference, "_merged_linear", lambda *args: merged.append(1) or merged_linear(*args))
    model = _trained_looking(ModelConfig(arch="wavenet", block_size=8, n_layers=3, n_embd=4, n_hidden=64))
    x = torch.randint(0, 4, (600, 8), generator=torch.Generator().manual_seed(3))  # few ids: many repeats
    with torch.inference_mode():
        for k in range(1, len(model.layers) + 1):
            expected = x
            for layer in model.layers[:k]:
                expected = layer(expected)
            got = Folded(model.layers[:k])(x)
            assert got.shape == expected.shape, k
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, msg=f"first {k} layers")
    assert merged  # the sum over parts was taken, and checked above


def test_folding_follows_the_statistics_choice_and_split_loss_uses_it(names_path) -> None:
    from bnnames.data import load_dataset

    x, y = load_dataset(names_path, 42, 3).examples("val")
    model = _trained_looking(ModelConfig())
    calibrate(model, x)  # calibrated statistics, far from the random running ones
    losses = {}
    for kind in ("running", "calibrated"):
        model.use_stats(kind)
        with torch.inference_mode():
            direct = F.cross_entropy(model(x).double(), y).item()
        losses[kind] = split_loss(model, x, y, chunk=1000)
        assert losses[kind] == pytest.approx(direct, abs=1e-5)
    assert abs(losses["running"] - losses["calibrated"]) > 1e-2


@pytest.mark.parametrize("style", ["paper", "lecture"])
def test_calibration_through_folded_layers_equals_a_direct_computation(style: str) -> None:
    """Each BatchNorm's calibrated statistics: mean and unbiased var|std of its input, measured
    through the unfolded model with the earlier BatchNorms already calibrated (the lecture's)."""
    model = _trained_looking(ModelConfig(n_layers=2, n_hidden=40, bn_style=style))
    x = torch.randint(0, 30, (20_000, 3), generator=torch.Generator().manual_seed(4))
    calibrate(model, x)
    model.use_stats("calibrated")
    h = x
    with torch.inference_mode():
        for layer in model.layers:
            if layer in model.batch_norms():
                mean, spread = layer.inference_stats()
                var = h.double().var(0)
                torch.testing.assert_close(mean, h.double().mean(0).float(), rtol=1e-5, atol=1e-5)
                expected = var if style == "paper" else var.sqrt()
                torch.testing.assert_close(spread, expected.float(), rtol=1e-5, atol=1e-5)
            h = layer(h)


class _MeanOverPositions(Layer):
    """A layer that mixes positions: each position gets the mean of all positions added."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x.mean(1, keepdim=True) if x.dim() == 3 else x


def test_a_layer_that_mixes_positions_runs_layer_by_layer() -> None:
    """Sharing rows would compute the mean over distinct rows, not over a context's positions:
    a layer that does not say it acts per position makes Folded fall back, with the model's
    logits and shape (N, vocab)."""
    config = ModelConfig(arch="wavenet", block_size=4, n_layers=2, n_embd=3, n_hidden=8)
    model = _trained_looking(config)
    model.layers.insert(2, _MeanOverPositions())
    x = torch.randint(0, 30, (50, config.block_size), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected, got = model(x), folded(model)(x)
    assert got.shape == (50, 30)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
