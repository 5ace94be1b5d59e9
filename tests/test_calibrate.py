"""Calibration against a direct mean / variance of each BatchNorm input."""

from __future__ import annotations

import torch

from bnnames.calibrate import calibrate
from bnnames.config import ModelConfig
from bnnames.model import create_model


def _model_and_data(layers: int = 2, style: str = "paper"):
    g = torch.Generator().manual_seed(0)
    model = create_model(ModelConfig(n_hidden=12, n_layers=layers, bn_style=style), 9, g)
    x = torch.randint(0, 9, (1000, 3), generator=g)
    model.train()
    for start in range(0, 1000, 50):  # some training-mode passes: running stats differ from the truth
        model(x[start : start + 50])
    return model, x


def test_full_method_is_the_direct_mean_and_variance_layer_by_layer():
    model, x = _model_and_data()
    running = [bn.running_var.clone() for bn in model.batch_norms()]
    assert calibrate(model, x, "full") == 1000
    emb, flat, lin1, bn1, tanh1, lin2, bn2 = model.layers[:7]
    with torch.no_grad():
        h1 = lin1(flat(emb(x))).double()  # (1000, 12), the first BatchNorm's input
        torch.testing.assert_close(bn1.calibrated_mean.double(), h1.mean(0), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(bn1.calibrated_var.double(), h1.var(0), atol=1e-6, rtol=1e-5)
        bn1.eval()
        bn1.use_calibrated = True
        h2 = lin2(tanh1(bn1(lin1(flat(emb(x)))))).double()  # measured through the calibrated layer 1
        torch.testing.assert_close(bn2.calibrated_mean.double(), h2.mean(0), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(bn2.calibrated_var.double(), h2.var(0), atol=1e-6, rtol=1e-5)
    assert all(torch.equal(bn.running_var, r) for bn, r in zip(model.batch_norms(), running))  # kept


def test_lecture_style_stores_the_standard_deviation():
    model, x = _model_and_data(layers=1, style="lecture")
    calibrate(model, x, "full")
    emb, flat, lin1, bn = model.layers[:4]
    with torch.no_grad():
        h = lin1(flat(emb(x)))
    torch.testing.assert_close(bn.calibrated_std, h.std(0), atol=1e-5, rtol=1e-5)


def test_paper_method_averages_mini_batch_statistics_of_the_training_network():
    model, x = _model_and_data(layers=1)
    reference = create_model(ModelConfig(n_hidden=12, n_layers=1), 9, torch.Generator().manual_seed(0))
    reference.load_state_dict(model.state_dict())
    before = model.batch_norms()[0].running_mean.clone()
    used = calibrate(model, x, "paper", batch_size=32, generator=torch.Generator().manual_seed(5))
    assert used == 1000 // 32 * 32
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(5))
    emb, flat, lin1 = reference.layers[:3]
    means, variances = [], []
    with torch.no_grad():
        for b in range(1000 // 32):
            h = lin1(flat(emb(x[order[b * 32 : (b + 1) * 32]])))
            means.append(h.mean(0))
            variances.append(h.var(0, unbiased=False) * 32 / 31)  # Algorithm 2: m/(m-1) * E[var_B]
    bn = model.batch_norms()[0]
    torch.testing.assert_close(bn.calibrated_mean, torch.stack(means).mean(0))
    torch.testing.assert_close(bn.calibrated_var, torch.stack(variances).mean(0))
    assert torch.equal(bn.running_mean, before)  # the training-mode pass left the running stats alone
