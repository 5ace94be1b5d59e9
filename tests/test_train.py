"""Training: the lecture preset is the notebook's loop number for number; real runs learn."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bnnames.config import ModelConfig, TrainConfig, preset
from bnnames.data import load_dataset
from bnnames.evaluate import split_loss
from bnnames.model import create_model
from bnnames.training.loop import train_steps


def _notebook_loop(x, y, vocab_size, steps):
    """A transcription of the notebook's BatchNorm training cell (the trusted reference)."""
    g = torch.Generator().manual_seed(2147483647)
    C = torch.randn((vocab_size, 10), generator=g)
    W1 = torch.randn((30, 200), generator=g) * ((5 / 3) / (30**0.5))
    W2 = torch.randn((200, vocab_size), generator=g) * 0.01
    b2 = torch.randn(vocab_size, generator=g) * 0
    bngain, bnbias = torch.ones((1, 200)), torch.zeros((1, 200))
    mean_running, std_running = torch.zeros((1, 200)), torch.ones((1, 200))
    parameters = [C, W1, W2, b2, bngain, bnbias]
    for p in parameters:
        p.requires_grad = True
    losses = []
    for i in range(steps):
        ix = torch.randint(0, x.shape[0], (32,), generator=g)
        emb = C[x[ix]]
        hpreact = emb.view(emb.shape[0], -1) @ W1
        meani, stdi = hpreact.mean(0, keepdim=True), hpreact.std(0, keepdim=True)
        hpreact = bngain * (hpreact - meani) / stdi + bnbias
        with torch.no_grad():
            mean_running = 0.999 * mean_running + 0.001 * meani
            std_running = 0.999 * std_running + 0.001 * stdi
        loss = F.cross_entropy(torch.tanh(hpreact) @ W2 + b2, y[ix])
        for p in parameters:
            p.grad = None
        loss.backward()
        lr = 0.1 if i < 100000 else 0.01
        for p in parameters:
            p.data += -lr * p.grad
        losses.append(loss.item())
    return [p.detach() for p in parameters], (mean_running, std_running), losses


def test_lecture_preset_equals_the_notebook_loop_bit_for_bit(names_path):
    model_config, train_config = preset("lecture")
    data = load_dataset(names_path, train_config.split_seed, model_config.block_size)
    x, y = data.examples("train")
    expected, (mean_running, std_running), expected_losses = _notebook_loop(x, y, data.vocab.size, 300)

    g = torch.Generator().manual_seed(train_config.seed)
    model = create_model(model_config, data.vocab.size, g)
    losses: list[float] = []
    train_steps(model, x, y, train_config, g, 0, 300, lambda step, loss, lr: losses.append(loss), report_every=1)
    emb, _, lin1, bn, _, lin2 = model.layers
    ours = [emb.weight, lin1.weight, lin2.weight, lin2.bias, bn.weight, bn.bias]
    assert all(torch.equal(a.detach(), b.reshape(a.shape)) for a, b in zip(ours, expected))
    assert losses == expected_losses
    torch.testing.assert_close(bn.running_mean, mean_running.reshape(-1))
    torch.testing.assert_close(bn.running_std, std_running.reshape(-1))


def test_a_short_default_run_learns(names_path):
    model_config, train_config = ModelConfig(), TrainConfig(steps=3000)
    data = load_dataset(names_path, train_config.split_seed, model_config.block_size)
    g = torch.Generator().manual_seed(train_config.seed)
    model = create_model(model_config, data.vocab.size, g)
    x, y = data.examples("train")
    assert train_steps(model, x, y, train_config, g, 0, train_config.steps) == 3000
    val = split_loss(model, *data.examples("val"))
    assert val < 2.45  # measured 2.36 after 3,000 steps; the untrained model is at ln(27) = 3.30


def test_should_stop_ends_the_loop_early_and_says_where():
    x = torch.randint(0, 5, (100, 3), generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 5, (100,), generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(0)
    model = create_model(ModelConfig(n_hidden=8), 5, g)
    calls = iter(range(100))
    assert train_steps(model, x, y, TrainConfig(steps=50), g, 0, 50, should_stop=lambda: next(calls) >= 7) == 7
