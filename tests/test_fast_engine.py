"""The fast loop: exact batches, bit-identical resume wherever it stops, compile and its fallback."""

from __future__ import annotations

import pytest
import torch

from bnnames.config import ModelConfig
from bnnames.errors import ConfigError
from bnnames.model import build_model
from bnnames.runtime import num_threads
from bnnames.training.engines import make_trainer, resolve_engine
from bnnames.training.fast import compiled, packages
from bnnames.training.fast import engine as fast_engine
from bnnames.training.fast.batches import BatchDraws
from bnnames.training.fast.engine import FastTrainer
from bnnames.training.fast.plan import plan_of, state_of
from bnnames.training.loop import train_steps
from tests.helpers import SHORT, assert_equal_states, fresh, record, state, train_split


def test_drawing_many_steps_at_once_gives_the_per_step_batches_and_state() -> None:
    x, y = torch.arange(1000).reshape(500, 2), torch.arange(500)
    per_step = torch.Generator().manual_seed(5)
    ix = torch.stack([torch.randint(0, 500, (4,), generator=per_step) for _ in range(22)])  # (22, 4)
    generator = torch.Generator().manual_seed(5)
    draws = BatchDraws(x, y, 4, generator, start=3, stop=30, block_steps=8)  # blocks end at 8, 16, 24, 30
    got = [batch for batch, _ in zip(draws.steps(), range(22))]  # steps 3..24: a stop mid-block
    assert torch.equal(torch.stack([t for _, t, _ in got]), ix)
    assert torch.equal(torch.stack([c for c, _, _ in got]), x[ix])
    assert all(keeps == () for _, _, keeps in got)  # no dropout: no masks
    assert draws.block_end == 30  # the last block ran ahead of the steps taken
    draws.sync(3 + 22)  # the state a per-step loop has after 22 steps
    replay = torch.Generator().manual_seed(5)
    for _ in range(22):
        torch.randint(0, 500, (4,), generator=replay)
    assert torch.equal(generator.get_state(), replay.get_state())


def test_a_segment_draws_nothing_past_its_end() -> None:
    """A run's segments end at every evaluation: a block ending there has nothing to replay."""
    x, y = torch.arange(1000).reshape(500, 2), torch.arange(500)
    per_step = torch.Generator().manual_seed(5)
    ix = torch.stack([torch.randint(0, 500, (4,), generator=per_step) for _ in range(10)])  # steps 3..12
    generator = torch.Generator().manual_seed(5)
    draws = BatchDraws(x, y, 4, generator, start=3, stop=13, block_steps=8)  # blocks [3, 8) and [8, 13)
    got = list(draws.steps())
    assert torch.equal(torch.stack([t for _, t, _ in got]), ix)
    assert draws.block_end == 13
    assert torch.equal(generator.get_state(), per_step.get_state())  # already where a per-step loop is
    draws.sync(13)
    assert torch.equal(generator.get_state(), per_step.get_state())


MLP = ModelConfig()
WAVENET = ModelConfig(arch="wavenet", block_size=4, n_layers=2, n_embd=4, n_hidden=16)  # small: a short compile


def _run(trainer_for, x, y, vocab, stops: list[int], config: ModelConfig = MLP, into=None):  # type: ignore[no-untyped-def]
    """Train 0 -> stops[-1] in segments ending at `stops`, a trainer each (as a resumed process).

    `into`: train this model from the fresh start instead of a new one (its tensors are overwritten
    in place), so that one compiled trainer of it serves every run of a test.
    """
    model, generator = fresh(config, vocab)
    if into is not None:
        into.load_state_dict(model.state_dict())
        model = into
    losses: list[tuple[int, float]] = []
    start = 0
    for stop in stops:
        start = trainer_for(model)(x, y, generator, start, stop, record(losses), report_every=1)
    return state(model, generator), losses


@pytest.mark.parametrize("config", [MLP, WAVENET], ids=["mlp", "wavenet"])
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_segments_and_resumes_are_bit_identical_to_one_run(names_path, compiled: bool, config: ModelConfig) -> None:
    x, y, vocab = train_split(names_path, config.block_size)
    model = build_model(config, vocab)
    trainer = FastTrainer(model, plan_of(model), SHORT, compiled=compiled)  # one compile (or load) per test
    whole, losses = _run(lambda m: trainer, x, y, vocab, [100], config, into=model)
    split, split_losses = _run(lambda m: trainer, x, y, vocab, [3, 37, 40, 61, 100], config, into=model)  # unaligned
    assert_equal_states(whole, split)
    assert losses == split_losses


@pytest.mark.parametrize("config", [MLP, ModelConfig(norm="layer", n_hidden=64)], ids=["batch-norm", "layer-norm"])
def test_compiled_steps_follow_the_reference_loop(names_path, config: ModelConfig) -> None:
    x, y, vocab = train_split(names_path)
    reference, ref_gen = fresh(config, vocab)
    ref_losses: list[tuple[int, float]] = []
    with num_threads(1):
        train_steps(reference, x, y, SHORT, ref_gen, 0, 100, record(ref_losses), report_every=1)
    model, generator = fresh(config, vocab)
    notes: list[str] = []
    trainer = make_trainer(
        model, SHORT.__class__(**{**SHORT.__dict__, "engine": "compiled"}), torch.device("cpu"), notes.append
    )
    losses: list[tuple[int, float]] = []
    trainer(x, y, generator, 0, 100, record(losses))
    assert not any("failed" in n for n in notes), notes
    assert trainer.native is not None  # the compiled step ran (kept on disk: the alphabet test below)
    assert max(abs(a - b) for (_, a), (_, b) in zip(losses, ref_losses[99::100])) < 1e-5
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=1e-4, atol=1e-5, msg=key)
    assert torch.equal(generator.get_state(), ref_gen.get_state())


def test_another_alphabet_size_loads_the_compiled_step_instead_of_compiling(names_path) -> None:
    """The vocabulary's dimensions are symbolic: a names file with 4 more characters finds the
    package compiled for the first size (same key) and runs it, compiling nothing."""
    x, y, vocab = train_split(names_path)
    notes: list[list[str]] = []
    for size in (vocab, vocab + 4):  # the first compiles (or loads) the step, the second loads it
        notes.append([])
        model, generator = fresh(ModelConfig(), size)
        trainer = FastTrainer(model, plan_of(model), SHORT, compiled=True, note=notes[-1].append)
        trainer(x, y, generator, 0, 8)
        assert trainer.native is not None
    assert notes[1] == [], notes  # no "compiling the training step" the second time


def test_the_package_key_follows_the_code_not_the_alphabet() -> None:
    keys = {}
    for size in (27, 31):
        model = build_model(ModelConfig(), size)
        params, buffers = state_of(model)
        inputs = [torch.zeros(32, 3, dtype=torch.long), torch.zeros(32, dtype=torch.long), torch.tensor(0.1), *params]
        keys[size] = compiled.step_key(plan_of(model), inputs, size, 0.0, (2, None))
        assert compiled.step_key(plan_of(model), inputs, size, 0.0, None) != keys[size]  # static
        assert compiled.step_key(plan_of(model), inputs, size, 1e-3, (2, None)) != keys[size]
    assert keys[27] == keys[31]
    wider = build_model(ModelConfig(n_hidden=100), 27)
    params, _ = state_of(wider)
    inputs = [torch.zeros(32, 3, dtype=torch.long), torch.zeros(32, dtype=torch.long), torch.tensor(0.1), *params]
    assert compiled.step_key(plan_of(wider), inputs, 27, 0.0, (2, None)) != keys[27]


def test_a_failed_compile_falls_back_to_the_eager_step_and_says_so_once(names_path, monkeypatch) -> None:
    def no_compiler(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")

    monkeypatch.setattr(fast_engine, "native_step", no_compiler)
    x, y, vocab = train_split(names_path)
    notes: list[str] = []
    fallback, _ = _run(
        lambda m: FastTrainer(m, plan_of(m), SHORT, compiled=True, note=notes.append), x, y, vocab, [13, 50]
    )
    eager, _ = _run(lambda m: FastTrainer(m, plan_of(m), SHORT, compiled=False), x, y, vocab, [50])
    assert_equal_states(fallback, eager)
    failures = [n for n in notes if "failed" in n]
    assert len(failures) == 2  # once per trainer (each segment above builds a new one, as a process would)
    assert "No working C++ compiler found" in failures[0] and "\n" not in failures[0]


def test_training_leaves_the_callers_thread_count_alone(names_path) -> None:
    x, y, vocab = train_split(names_path)
    model, generator = fresh(ModelConfig(), vocab)
    before = torch.get_num_threads()
    with num_threads(2):
        FastTrainer(model, plan_of(model), SHORT, compiled=False)(x, y, generator, 0, 5)
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before


def test_auto_picks_by_architecture_device_and_run_length() -> None:
    cpu = torch.device("cpu")
    model = build_model(ModelConfig(), 27)
    long_run, short_run = SHORT.__class__(steps=200_000), SHORT
    assert resolve_engine("auto", model, long_run, cpu) == "compiled"
    assert resolve_engine("auto", model, short_run, cpu) == "eager"
    assert resolve_engine("auto", model, long_run, cpu, examples=182_625) == "compiled"  # the standard file
    assert resolve_engine("auto", model, long_run, cpu, examples=20_000) == "eager"  # a plateau run ends early
    fixed = SHORT.__class__(steps=200_000, schedule="fixed")
    assert resolve_engine("auto", model, fixed, cpu, examples=20_000) == "compiled"  # it runs to --steps
    assert resolve_engine("auto", model, long_run, torch.device("meta")) == "eager"
    assert resolve_engine("reference", model, long_run, cpu) == "reference"
    model.layers.append(torch.nn.Identity())  # an architecture the fast step does not cover
    assert resolve_engine("auto", model, long_run, cpu) == "reference"
    with pytest.raises(ConfigError, match="does not cover this architecture"):
        make_trainer(model, SHORT.__class__(engine="eager"), cpu)


DROPPING = ModelConfig(arch="wavenet", block_size=4, n_layers=2, n_hidden=16, dropout=0.1)


@pytest.mark.parametrize("config", [MLP, DROPPING], ids=["mlp", "dropout"])
def test_auto_compiles_a_short_run_whose_step_is_already_cached(names_path, tmp_path, monkeypatch, config) -> None:
    """The key "auto" asks the cache for is the one the trainer itself looks up with real batches."""
    monkeypatch.setenv("BNNAMES_CACHE_DIR", str(tmp_path))
    looked_up: list[str] = []
    real_key = compiled.step_key
    monkeypatch.setattr(compiled, "step_key", lambda *args: looked_up.append(real_key(*args)) or looked_up[-1])

    def no_export(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("not compiling in this test")

    monkeypatch.setattr(compiled, "_export", no_export)
    x, y, vocab = train_split(names_path, config.block_size)
    model, generator = fresh(config, vocab)
    cpu, short = torch.device("cpu"), SHORT
    assert resolve_engine("auto", model, short, cpu, len(x), config.block_size) == "eager"  # nothing cached yet
    FastTrainer(model, plan_of(model), short, compiled=True)(x, y, generator, 0, 1)  # looks up, then falls back
    package = tmp_path / "compiled" / compiled.PACKAGES / f"{looked_up[-2]}.pt2"  # the dynamic key, asked first
    package.parent.mkdir(parents=True, exist_ok=True)
    package.write_bytes(b"")
    assert resolve_engine("auto", model, short, cpu, len(x), config.block_size) == "eager"  # no record: not loadable
    packages.record_path(package).write_text("{}")
    assert resolve_engine("auto", model, short, cpu, len(x), config.block_size) == "compiled"
    assert resolve_engine("auto", model, short, cpu, len(x)) == "eager"  # no context size given: the cache unasked
    assert resolve_engine("auto", model, short, torch.device("meta"), len(x), config.block_size) == "eager"
