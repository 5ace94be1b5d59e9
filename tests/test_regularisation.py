"""Weight decay and dropout: nothing changes at 0, the fast step follows autograd and the
reference loop, the masks come from the training generator (exact resume), old checkpoints load."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bnnames.config import ModelConfig, TrainConfig
from bnnames.model import BatchNorm, Dropout, Embedding, Flatten, Linear, Tanh, draw_keep
from bnnames.runtime import num_threads
from bnnames.storage.checkpoint import load_checkpoint
from bnnames.training.engines import make_trainer
from bnnames.training.fast.engine import FastTrainer
from bnnames.training.fast.plan import plan_of, state_of
from bnnames.training.fast.step import forward_backward
from bnnames.training.loop import train_steps
from bnnames.training.run import TrainRequest, run_training
from tests.helpers import (
    SHORT,
    TINY,
    Quiet,
    assert_same_run,
    cli,
    fail_with,
    fresh,
    interrupt_after,
    record,
    train_split,
)
from tests.test_errors_checkpoint import edit_json_meta

REGULARISED = ModelConfig(dropout=0.2, n_layers=2, n_hidden=64)  # two dropout layers: the draw order matters
# dropout over (B, T, C) activations between merges: the fast step reads its mask as (B * T, C) rows
WAVENET = ModelConfig(arch="wavenet", block_size=8, n_layers=3, n_embd=6, n_hidden=16, dropout=0.2, gain=1.0)
DECAYED = dataclasses.replace(SHORT, weight_decay=0.01)  # large enough to move the weights visibly in 100 steps

# SHA-256 (first 16 hex digits) of the state after 300 steps at commit 8707d77, before these options
# existed: torch 2.13.0 at one thread, on each AVX512 CPU the project has run on (MKL rounds matmuls
# differently on CPUs with AMX tiles, so each kind has its own recording, both made by running 8707d77)
BEFORE_BY_CPU = {
    "avx512": {
        ("reference", "paper"): "81247a2923e72372",
        ("reference", "lecture"): "bd29c2e8d271c5f9",
        ("eager", "paper"): "62d9f12027516603",
        ("eager", "lecture"): "212fed914694e3f8",
    },
    "avx512+amx": {
        ("reference", "paper"): "64f6490d7edc2fb7",
        ("reference", "lecture"): "6a6a164260b119ea",
        ("eager", "paper"): "a724123cc2dfc752",
        ("eager", "lecture"): "f382a1b7dd35da60",
    },
}
BEFORE = BEFORE_BY_CPU["avx512"]


def _cpu_kind() -> str | None:
    """Which recording applies here: None on a CPU or torch the digests were not recorded on."""
    if torch.__version__.split("+")[0] != "2.13.0" or torch.backends.cpu.get_cpu_capability() != "AVX512":
        return None
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return "avx512+amx" if "amx_tile" in flags.split() else "avx512"


def _digest(model: torch.nn.Module, generator: torch.Generator) -> str:
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.contiguous().numpy().tobytes())
    h.update(generator.get_state().numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("engine, style", list(BEFORE))
def test_at_zero_a_run_is_bit_identical_to_the_code_before_these_options(names_path, engine, style):
    kind = _cpu_kind()
    if kind is None:
        pytest.skip("the recorded digests pin torch 2.13.0 on an AVX512 CPU (with or without AMX)")
    x, y, vocab = train_split(names_path)
    model, generator = fresh(ModelConfig(bn_style=style, dropout=0.0), vocab)
    config = TrainConfig(steps=300, decay_at=200, engine=engine, weight_decay=0.0)
    with num_threads(1):
        make_trainer(model, config, torch.device("cpu"))(x, y, generator, 0, 300)
    assert _digest(model, generator) == BEFORE_BY_CPU[kind][(engine, style)]


def test_dropout_sits_after_each_hidden_tanh_and_is_absent_at_zero():
    kinds = [type(layer) for layer in fresh(REGULARISED, 27)[0].layers]
    assert kinds == [Embedding, Flatten, Linear, BatchNorm, Tanh, Dropout, Linear, BatchNorm, Tanh, Dropout, Linear]
    assert Dropout not in [type(layer) for layer in fresh(ModelConfig(), 27)[0].layers]


def test_dropout_keeps_the_mean_and_is_the_identity_without_a_generator_or_in_eval():
    layer = Dropout(0.25).train()
    x = torch.rand(400, 500, generator=torch.Generator().manual_seed(1)) + 1
    y = layer(x, torch.Generator().manual_seed(2))
    dropped = (y == 0).double().mean().item()
    assert abs(dropped - 0.25) < 0.005  # 200,000 draws: the std of the fraction is 0.001
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.75)  # inverted dropout: the mean is unchanged
    assert torch.equal(layer(x), x)  # no generator (calibration, probes): no noise, no draw
    assert torch.equal(layer.eval()(x, torch.Generator()), x)


def test_weight_decay_shrinks_embeddings_and_linear_weights_only(names_path):
    """One step with decay minus the same step without it is -lr * wd * p, and 0 elsewhere."""
    x, y, vocab = train_split(names_path)
    config = ModelConfig(norm_logits=True, n_layers=2, n_hidden=16)  # a BatchNorm on the logits too
    plain, g_plain = fresh(config, vocab)
    decayed, g_decayed = fresh(config, vocab)
    before = {name: p.detach().clone() for name, p in plain.named_parameters()}
    train_steps(plain, x, y, SHORT, g_plain, 0, 1)
    train_steps(decayed, x, y, DECAYED, g_decayed, 0, 1)
    shrunk = []
    for (name, a), (_, b) in zip(plain.named_parameters(), decayed.named_parameters()):
        expected = -SHORT.lr * DECAYED.weight_decay * before[name]
        if torch.equal(a, b):
            continue
        torch.testing.assert_close(b - a, expected, rtol=1e-3, atol=1e-8, msg=name)
        shrunk.append(name)
    assert shrunk == ["layers.0.weight", "layers.2.weight", "layers.5.weight", "layers.8.weight"]


def _masks_like_the_model(plan, generator, batch):  # type: ignore[no-untyped-def]
    """The keep masks a training forward pass draws after the batch, in the documented order."""
    return [draw_keep((batch, spec.width), spec.p, generator) for spec in plan.dropouts]


@pytest.mark.parametrize("config", [REGULARISED, WAVENET], ids=["mlp", "wavenet"])
def test_fast_backward_with_dropout_equals_autograd_in_float64(config):
    model, generator = fresh(config, 27, seed=3)
    model = model.double().train()
    ctx = torch.randint(0, 27, (32, config.block_size), generator=generator)
    target = torch.randint(0, 27, (32,), generator=generator)
    twin = torch.Generator().set_state(generator.get_state())
    loss = F.cross_entropy(model(ctx, generator), target)
    loss.backward()
    plan = plan_of(model)
    params, _ = state_of(model)
    fast_loss, grads, _ = forward_backward(plan, params, ctx, target, _masks_like_the_model(plan, twin, 32))
    torch.testing.assert_close(fast_loss, loss.detach(), rtol=1e-12, atol=1e-12)
    for (name, p), grad in zip(model.named_parameters(), grads):
        torch.testing.assert_close(grad, p.grad, rtol=1e-10, atol=1e-12, msg=name)
    assert torch.equal(twin.get_state(), generator.get_state())  # the same numbers were drawn


@pytest.mark.parametrize("config", [REGULARISED, WAVENET], ids=["mlp", "wavenet"])
def test_fast_steps_with_decay_and_dropout_equal_the_reference_in_float64(names_path, config):
    """Whole steps (draws, masks, backward, decayed update) against autograd, to float64 rounding."""
    x, y, vocab = train_split(names_path, config.block_size)
    reference, ref_gen = fresh(config, vocab)
    model, generator = fresh(config, vocab)
    reference, model = reference.double(), model.double()
    train_steps(reference, x, y, DECAYED, ref_gen, 0, 5)
    FastTrainer(model, plan_of(model), DECAYED, compiled=False)(x, y, generator, 0, 5)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=1e-12, atol=1e-12, msg=key)
    assert torch.equal(generator.get_state(), ref_gen.get_state())


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_three_hundred_fast_steps_follow_the_reference_loop(names_path, compiled):
    config = dataclasses.replace(DECAYED, steps=300, decay_at=200)
    model_config = ModelConfig(dropout=0.2) if compiled else REGULARISED  # one layer: a shorter compile
    x, y, vocab = train_split(names_path)
    reference, ref_gen = fresh(model_config, vocab)
    ref_losses: list[tuple[int, float]] = []
    with num_threads(1):
        train_steps(reference, x, y, config, ref_gen, 0, 300, record(ref_losses), report_every=1)
    model, generator = fresh(model_config, vocab)
    trainer = FastTrainer(model, plan_of(model), config, compiled=compiled)
    losses: list[tuple[int, float]] = []
    for start, stop in [(0, 13), (13, 300)]:  # a stop mid-block: masks drawn again from there
        trainer(x, y, generator, start, stop, record(losses), report_every=1)
    assert [s for s, _ in losses] == list(range(1, 301))
    assert max(abs(a - b) for (_, a), (_, b) in zip(losses, ref_losses)) < 1e-4
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=1e-4, atol=1e-4, msg=key)
    assert torch.equal(generator.get_state(), ref_gen.get_state())


@pytest.mark.parametrize("engine", ["reference", "eager"])
def test_interrupted_and_resumed_with_dropout_and_decay_is_bit_identical(tmp_path, engine):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(["anna", "bob", "carl", "dora", "emil", "fay", "gus", "hana", "ivo", "jo"] * 6))
    settings = {"n_hidden": 8, "n_embd": 3, "steps": 400, "decay_at": 250, "engine": engine}
    settings |= {"dropout": 0.1, "weight_decay": 1e-3, "n_layers": 2}

    def train(path, data, stop_at=None):  # type: ignore[no-untyped-def]
        stop: list[bool] = []
        undo = interrupt_after(stop_at, lambda: stop.append(True)) if stop_at else (lambda: None)
        request = TrainRequest(path, data, overrides=settings if data else {}, resume=data is None, save_every=100)
        try:
            return run_training(request, Quiet(), should_stop=lambda: bool(stop))
        finally:
            undo()

    whole, split = tmp_path / "whole.safetensors", tmp_path / "split.safetensors"
    train(whole, names)
    assert train(split, names, stop_at=137).step == 137
    assert train(split, None, stop_at=251).step == 251
    assert train(split, None).status == "done"
    assert_same_run(load_checkpoint(split), load_checkpoint(whole))
    assert load_checkpoint(whole).train_config.engine == engine


def test_checkpoints_written_before_these_options_load_with_them_at_zero(tmp_path, small_names, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli("train", small_names, *TINY)
    path = tmp_path / "bnnames.safetensors"
    raw = path.read_bytes()
    raw = edit_json_meta("model_config", lambda c: {k: v for k, v in c.items() if k != "dropout"})(raw)
    raw = edit_json_meta("train_config", lambda c: {k: v for k, v in c.items() if k != "weight_decay"})(raw)
    path.write_bytes(raw)
    ckpt = load_checkpoint(path)
    assert (ckpt.model_config.dropout, ckpt.train_config.weight_decay) == (0.0, 0.0)
    cli("train", "--resume", "--steps", "300")  # and such a run goes on
    assert load_checkpoint(path).step == 300


@pytest.mark.parametrize(
    "option, message",
    [
        (("--dropout", "1"), "--dropout must be at least 0 and below 1"),
        (("--dropout", "-0.1"), "--dropout must be at least 0 and below 1"),
        (("--dropout", "nan"), "--dropout must be at least 0 and below 1"),
        (("--weight-decay", "-1e-4"), "--weight-decay must be between"),
        (("--weight-decay", "nan"), "--weight-decay must be between"),
    ],
)
def test_bad_values_are_one_line(tmp_path, small_names, option, message):
    fail_with("train", small_names, *TINY, *option, "-c", tmp_path / "c.safetensors", fragments=(message,))
    assert not (tmp_path / "c.safetensors").exists()
