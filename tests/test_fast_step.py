"""The hand-derived step against autograd: loss, gradients, and 100 steps against `train_steps`
(the MLP family and the wavenet: merges of neighbours, BatchNorm over batch and time)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bnnames.config import ModelConfig, preset
from bnnames.model import BatchNorm, Tanh, build_model
from bnnames.runtime import num_threads
from bnnames.training.fast.engine import FastTrainer
from bnnames.training.fast.plan import plan_of, state_of, supports
from bnnames.training.fast.step import factors_first_layer, forward_backward, vocab_range
from bnnames.training.loop import train_steps
from tests.helpers import SHORT, fresh, record, train_split

CONFIGS = {
    "default": ModelConfig(),
    "lecture": ModelConfig(bn_style="lecture"),
    "no-norm": ModelConfig(norm="none"),
    "deep": ModelConfig(n_layers=3, n_hidden=64, n_embd=6, block_size=4),
    "deep-lecture-no-eps": ModelConfig(n_layers=2, n_hidden=48, bn_style="lecture", bn_momentum=0.1),
    # BatchNorm over batch and time (B * T rows), FlattenConsecutive before every layer
    "wavenet": preset("wavenet")[0],
    "wavenet-lecture-deep": ModelConfig(
        arch="wavenet", block_size=16, n_layers=4, n_embd=5, n_hidden=12, bn_style="lecture", bn_momentum=0.1
    ),
    "wavenet-no-norm": ModelConfig(arch="wavenet", block_size=4, n_layers=2, n_hidden=16, norm="none"),
    "layer-norm": ModelConfig(norm="layer"),
    "wavenet-layer-norm": ModelConfig(arch="wavenet", block_size=4, n_layers=2, n_hidden=16, norm="layer"),
}


def _with_bn_on_logits(model):  # type: ignore[no-untyped-def]
    """The lecture's deep MLP ends in Linear -> BatchNorm: the logits are normalised too."""
    model.layers.append(BatchNorm(27, momentum=0.1))
    return model


@pytest.mark.parametrize("name", [*CONFIGS, "bn-on-logits"])
def test_loss_and_gradients_equal_autograd_in_float64(name: str) -> None:
    config = CONFIGS.get(name, CONFIGS["deep"])
    model, generator = fresh(config, 27, seed=3)
    if name == "bn-on-logits":
        model = _with_bn_on_logits(model)
    model = model.double().train()
    ctx = torch.randint(0, 27, (32, config.block_size), generator=generator)
    target = torch.randint(0, 27, (32,), generator=generator)
    loss = F.cross_entropy(model(ctx), target)
    loss.backward()
    params, _ = state_of(model)
    fast_loss, grads, _ = forward_backward(plan_of(model), params, ctx, target)
    torch.testing.assert_close(fast_loss, loss.detach(), rtol=1e-12, atol=1e-12)
    for (pname, p), grad in zip(model.named_parameters(), grads):
        torch.testing.assert_close(grad, p.grad, rtol=1e-10, atol=1e-12, msg=pname)


@pytest.mark.parametrize("batch", [4, 32])
def test_the_wavenets_first_layer_factored_or_not_gives_autograds_gradients(batch: int) -> None:
    """Batch 32: 128 merged pairs, more than the 27 characters, so the first Linear runs on the
    table; batch 4: 16 pairs, directly on them. Both equal autograd in float64."""
    config = preset("wavenet")[0]
    model, generator = fresh(config, 27, seed=5)
    model = model.double().train()
    ctx = torch.randint(0, 27, (batch, config.block_size), generator=generator)
    target = torch.randint(0, 27, (batch,), generator=generator)
    F.cross_entropy(model(ctx), target).backward()
    params, _ = state_of(model)
    plan = plan_of(model)
    assert factors_first_layer(plan, 27, ctx.shape) == (batch == 32)
    assert vocab_range(plan, 27, ctx.shape) == ((2, 127) if batch == 32 else (16, None))
    _, grads, _ = forward_backward(plan, params, ctx, target)
    for (pname, p), grad in zip(model.named_parameters(), grads):
        torch.testing.assert_close(grad, p.grad, rtol=1e-10, atol=1e-12, msg=pname)


@pytest.mark.parametrize(
    "name",
    [
        "default",
        "lecture",
        "no-norm",
        "deep",
        "bn-on-logits",
        "wavenet-lecture-deep",
        "wavenet-no-norm",
        "layer-norm",
        "wavenet-layer-norm",
    ],
)
def test_hundred_eager_steps_follow_the_reference_loop(names_path, name: str) -> None:
    """Same losses to 1e-5 at every step, same parameters and BatchNorm buffers to float tolerance."""
    config = CONFIGS.get(name, CONFIGS["deep"])
    extend = _with_bn_on_logits if name == "bn-on-logits" else lambda model: model
    x, y, vocab = train_split(names_path, config.block_size)
    reference, ref_gen = fresh(config, vocab)
    reference = extend(reference)
    ref_losses: list[tuple[int, float]] = []
    with num_threads(1):  # two threads only contend at this size (and this machine is shared)
        train_steps(reference, x, y, SHORT, ref_gen, 0, 100, record(ref_losses), report_every=1)
    model, generator = fresh(config, vocab)
    model = extend(model)
    losses: list[tuple[int, float]] = []
    FastTrainer(model, plan_of(model), SHORT, compiled=False)(x, y, generator, 0, 100, record(losses), report_every=1)
    assert [s for s, _ in losses] == [s for s, _ in ref_losses] == list(range(1, 101))
    assert max(abs(a - b) for (_, a), (_, b) in zip(losses, ref_losses)) < 1e-5
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=1e-4, atol=1e-5, msg=key)
    assert torch.equal(generator.get_state(), ref_gen.get_state())  # the same batches were drawn


def test_the_wavenet_preset_follows_the_reference_for_a_thousand_steps(names_path) -> None:
    """Issue 10's bar: the same losses as the reference within 1e-4 over the first 1,000 steps."""
    config, train = preset("wavenet")
    x, y, vocab = train_split(names_path, config.block_size)
    reference, ref_gen = fresh(config, vocab)
    ref_losses: list[tuple[int, float]] = []
    with num_threads(1):
        train_steps(reference, x, y, train, ref_gen, 0, 1000, record(ref_losses), report_every=1)
    model, generator = fresh(config, vocab)
    losses: list[tuple[int, float]] = []
    FastTrainer(model, plan_of(model), train, compiled=False)(x, y, generator, 0, 1000, record(losses), report_every=1)
    assert max(abs(a - b) for (_, a), (_, b) in zip(losses, ref_losses)) < 1e-4
    assert len(losses) == len(ref_losses) == 1000


def test_a_merge_refuses_a_context_it_does_not_divide_as_the_model_does() -> None:
    model = build_model(ModelConfig(arch="wavenet", block_size=4, n_layers=2, n_hidden=8), 27).train()
    ctx, target = torch.zeros(8, 6, dtype=torch.long), torch.zeros(8, dtype=torch.long)  # T = 6: 3 pairs, then 1.5
    with pytest.raises(RuntimeError):
        model(ctx)
    params, _ = state_of(model)
    with pytest.raises(RuntimeError):
        forward_backward(plan_of(model), params, ctx, target)


def test_supports_the_mlp_family_and_nothing_else() -> None:
    for config in CONFIGS.values():
        assert supports(build_model(config, 27))
    odd = build_model(ModelConfig(), 27)
    odd.layers.insert(3, Tanh().double())  # an extra layer the plan does not cover is fine...
    assert supports(odd)
    odd.layers.insert(3, torch.nn.Dropout())  # ...an unknown layer type is not
    assert not supports(odd)
