"""The deep and hierarchical (WaveNet-style) presets, and --norm none, against direct computations."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from bnnames.config import TANH_GAIN, ModelConfig, preset, resolve_configs
from bnnames.errors import ConfigError
from bnnames.model import BatchNorm, FlattenConsecutive, Linear, create_model


def _model(name: str, **changes) -> tuple[ModelConfig, torch.nn.Module]:
    config = dataclasses.replace(preset(name)[0], **changes)
    return config, create_model(config, 27, torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "name, norm, count",
    [
        ("wavenet", "batch", 76_579),  # makemore part 5 prints 76579
        ("deep", "batch", 47_024),  # part 3's 47,551 minus the Linear biases it later drops (5 * 100 + 27)
        ("wavenet", "none", 76_579 - 3 * 2 * 128 + 3 * 128),  # BatchNorm's gain and bias -> Linear bias
        ("deep", "none", 47_024 - 5 * 200 - 2 * 27 + 5 * 100 + 27),
    ],
)
def test_parameter_counts_match_the_lectures(name, norm, count):
    _, model = _model(name, norm=norm)
    assert sum(p.numel() for p in model.parameters()) == count
    assert model(torch.zeros(4, preset(name)[0].block_size, dtype=torch.long)).shape == (4, 27)


def test_the_best_preset_is_a_wider_wavenet_with_batch_norm_after_every_hidden_linear():
    config, model = _model("best")
    shape = (config.arch, config.block_size, config.n_layers, config.n_embd, config.n_hidden, config.dropout)
    assert shape == ("wavenet", 8, 3, 80, 448, 0.1)
    linears = [m for m in model.layers if isinstance(m, Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(160, 448), (896, 448), (896, 448), (448, 27)]
    # BatchNorm right after each hidden Linear (which then has no bias), none on the logits
    layers = list(model.layers)
    after = [layers[layers.index(m) + 1] for m in linears[:-1]]
    assert all(isinstance(m, BatchNorm) for m in after) and len(model.batch_norms()) == 3
    assert all(m.bias is None for m in linears[:-1])
    assert (
        sum(p.numel() for p in model.parameters()) == 27 * 80 + 160 * 448 + 2 * 896 * 448 + 3 * 2 * 448 + 448 * 27 + 27
    )
    assert model(torch.zeros(4, 8, dtype=torch.long)).shape == (4, 27)
    train = preset("best")[1]
    assert (train.schedule, train.patience, train.steps, train.batch_size) == ("plateau", 10, 180_000, 32)


def test_flatten_consecutive_merges_neighbour_pairs():
    x = torch.arange(2 * 8 * 3).reshape(2, 8, 3)
    out = FlattenConsecutive(2)(x)  # (2, 4, 6): characters (0,1), (2,3), ...
    assert out.shape == (2, 4, 6)
    assert torch.equal(out[:, 1], torch.cat([x[:, 2], x[:, 3]], dim=1))
    assert FlattenConsecutive(2)(torch.zeros(5, 2, 7)).shape == (5, 14)  # the last level drops time


def test_wavenet_forward_equals_the_lecture_written_out_with_torch_batch_norm():
    """Three levels of merge-2 -> Linear -> BatchNorm over (batch, time) -> tanh, by hand."""
    _, model = _model("wavenet")
    model.train()
    x = torch.randint(0, 27, (32, 8), generator=torch.Generator().manual_seed(1))
    linears = [m for m in model.layers if isinstance(m, Linear)]
    norms = model.batch_norms()
    h = model.layers[0].weight[x]  # (32, 8, 24)
    for lin, bn in zip(linears[:3], norms):
        h = h.reshape(h.shape[0], h.shape[1] // 2, -1) @ lin.weight  # (32, T/2, 128)
        # torch's BatchNorm1d wants (N, C, L): normalising (32, T, C) over batch and time is that
        h = F.batch_norm(h.transpose(1, 2), None, None, bn.weight, bn.bias, training=True, eps=bn.eps)
        h = torch.tanh(h.transpose(1, 2))
    expected = h.squeeze(1) @ linears[3].weight + linears[3].bias
    torch.testing.assert_close(model(x), expected)
    assert [tuple(m.weight.shape) for m in linears] == [(48, 128), (256, 128), (256, 128), (128, 27)]


def test_batch_norm_over_time_keeps_running_stats_like_torch():
    ours = BatchNorm(5, momentum=0.1)
    ref = torch.nn.BatchNorm1d(5, momentum=0.1)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        x = torch.randn(8, 4, 5, generator=g) * 2 + 1  # (N, T, C)
        torch.testing.assert_close(ours(x), ref(x.transpose(1, 2)).transpose(1, 2))
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)


def test_init_scales_of_each_preset():
    _, model = _model("wavenet")
    linears = [m for m in model.layers if isinstance(m, Linear)]
    assert all(m.bias is None for m in linears[:3]) and linears[3].bias is not None
    # hidden N(0,1) / sqrt(fan_in) (gain 1, the lecture's); output N(0,1) / sqrt(128) * 0.1
    assert abs(linears[1].weight.std().item() - 1 / math.sqrt(256)) < 0.003
    assert abs(linears[3].weight.std().item() - 0.1 / math.sqrt(128)) < 0.001
    assert torch.equal(linears[3].bias, torch.zeros(27))

    _, model = _model("deep")
    assert isinstance(model.layers[-1], BatchNorm) and len(model.batch_norms()) == 6
    assert torch.equal(model.layers[-1].weight, torch.full((27,), 0.1))  # the lecture's gamma *= 0.1
    assert all(bn.weight.eq(1).all() for bn in model.batch_norms()[:-1])
    last = [m for m in model.layers if isinstance(m, Linear)][-1]
    assert last.bias is None and abs(last.weight.std().item() - TANH_GAIN / 10) < 0.02


def test_norm_none_keeps_biases_and_tanh_gain_unless_given():
    model_config, _ = resolve_configs("wavenet", {"norm": "none"})
    assert model_config.gain == TANH_GAIN  # the BN preset's gain 1 would let tanh activations shrink
    assert resolve_configs("wavenet", {"norm": "none", "gain": 1.0})[0].gain == 1.0
    _, model = _model("deep", norm="none")
    assert not model.batch_norms()
    linears = [m for m in model.layers if isinstance(m, Linear)]
    assert all(m.bias is not None for m in linears)
    assert abs(linears[-1].weight.std().item() - 0.1 / math.sqrt(100)) < 0.002  # last layer * 0.1


def test_a_wavenet_whose_context_is_not_a_power_of_two_is_refused():
    with pytest.raises(ConfigError, match="2 \\*\\* --n-layers"):
        resolve_configs("wavenet", {"block_size": 6})
    assert resolve_configs("wavenet", {"block_size": 16, "n_layers": 4})[0].block_size == 16


def test_a_config_stored_before_the_new_fields_loads_as_the_same_model():
    from bnnames.config import from_json_dict, to_json_dict

    stored = {k: v for k, v in to_json_dict(ModelConfig()).items() if k not in ("norm_logits", "gain", "out_init")}
    assert from_json_dict(ModelConfig, stored) == ModelConfig()
    round_trip = from_json_dict(ModelConfig, to_json_dict(preset("wavenet")[0]))
    assert round_trip == preset("wavenet")[0]
