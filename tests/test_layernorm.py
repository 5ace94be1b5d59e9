"""LayerNorm against torch's nn.LayerNorm, and in the folded path against layer by layer."""

from __future__ import annotations

import pytest
import torch

from bnnames.config import ModelConfig
from bnnames.inference import folded
from bnnames.model import LayerNorm, create_model


@pytest.mark.parametrize("shape", [(7, 5), (4, 3, 5)])
def test_layernorm_matches_torch_forward_and_gradients(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(0)
    ours, theirs = LayerNorm(5).double(), torch.nn.LayerNorm(5).double()
    with torch.no_grad():
        for p, q in ((ours.weight, theirs.weight), (ours.bias, theirs.bias)):
            p.copy_(torch.randn(5, generator=g, dtype=torch.float64))
            q.copy_(p)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 3 + 1).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    up = torch.randn(shape, generator=g, dtype=torch.float64)
    (ours(x) * up).sum().backward()
    (theirs(x2) * up).sum().backward()
    torch.testing.assert_close(ours(x), theirs(x2))
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad)
    torch.testing.assert_close(ours.bias.grad, theirs.bias.grad)


@pytest.mark.parametrize("arch", ["mlp", "wavenet"])
def test_layernorm_model_folds_as_layer_by_layer(arch: str) -> None:
    config = ModelConfig(arch=arch, norm="layer", block_size=4, n_layers=2, n_embd=3, n_hidden=8)
    model = create_model(config, 30, torch.Generator().manual_seed(1)).eval()
    assert model.choose_stats() == "none" and not model.batch_norms()
    x = torch.randint(0, 30, (60, 4), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected, got = model(x), folded(model)(x)
    assert got.shape == (60, 30)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
