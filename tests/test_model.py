"""Model shapes, initialisation and the reference's random-number order."""

from __future__ import annotations

import torch

from bnnames.config import ModelConfig
from bnnames.model import BatchNorm, Linear, create_model


def test_reference_model_shapes_and_parameter_count():
    model = create_model(ModelConfig(), vocab_size=27, generator=torch.Generator().manual_seed(0))
    logits = model(torch.zeros(5, 3, dtype=torch.long))
    assert logits.shape == (5, 27)
    assert sum(p.numel() for p in model.parameters()) == 12097  # the notebook's count
    assert len(model.batch_norms()) == 1


def test_init_draws_the_reference_numbers_in_the_reference_order():
    g = torch.Generator().manual_seed(2147483647)  # the notebook: C, W1, W2, b2 from one generator
    C = torch.randn((27, 10), generator=g)
    W1 = torch.randn((30, 200), generator=g) * ((5 / 3) / (30**0.5))
    W2 = torch.randn((200, 27), generator=g) * 0.01
    b2 = torch.randn(27, generator=g) * 0
    after = torch.randint(0, 100, (32,), generator=g)

    g2 = torch.Generator().manual_seed(2147483647)
    model = create_model(ModelConfig(), 27, g2)
    emb, _, lin1, bn, _, lin2 = model.layers
    assert torch.equal(emb.weight, C) and torch.equal(lin1.weight, W1)
    assert torch.equal(lin2.weight, W2) and torch.equal(lin2.bias, b2)
    assert lin1.bias is None and isinstance(bn, BatchNorm)
    assert torch.equal(torch.randint(0, 100, (32,), generator=g2), after)  # same stream afterwards


def test_configurable_depth_widths_and_no_norm():
    config = ModelConfig(block_size=5, n_embd=4, n_hidden=16, n_layers=3, norm="none")
    model = create_model(config, 11, torch.Generator().manual_seed(0))
    assert model(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 11)
    linears = [m for m in model.layers if isinstance(m, Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(20, 16), (16, 16), (16, 16), (16, 11)]
    assert all(m.bias is not None for m in linears) and not model.batch_norms()


def test_kaiming_init_keeps_preactivations_near_unit_std():
    model = create_model(ModelConfig(n_embd=50, n_hidden=400), 27, torch.Generator().manual_seed(0))
    emb, flat, lin = model.layers[:3]
    h = lin(flat(emb(torch.randint(0, 27, (4000, 3), generator=torch.Generator().manual_seed(1)))))
    assert 1.4 < h.std().item() < 1.95  # gain 5/3 over unit-std inputs
    assert abs(model.layers[-1].weight.std().item() - 0.01) < 0.002
