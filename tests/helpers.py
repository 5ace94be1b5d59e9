"""What the tests share: running the CLI, one-line error checks, tiny settings, a quiet progress,
interrupting a run at an exact step, comparing runs bit for bit, small training setups."""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from bnnames.cli import make_app
from bnnames.config import ModelConfig, TrainConfig
from bnnames.data import load_dataset
from bnnames.model import NamesModel, create_model
from bnnames.storage.checkpoint import Checkpoint, load_checkpoint

# a model small enough that a few hundred steps take a fraction of a second
TINY = ("--n-hidden", "8", "--n-embd", "3", "--steps", "200", "--save-every", "100")


def cli(*args: object, code: int = 0, input: str | None = None, env: dict[str, str] | None = None):
    """Run `bnnames ARGS` in-process (with `input` on stdin, `env` added) and check its exit code."""
    result = CliRunner().invoke(make_app(), [str(a) for a in args], input=input, env=env)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
    return result


def assert_one_line_error(result, *fragments: str, code: int = 1, progress: bool = False) -> str:
    """Exit `code`, exactly one line on stderr, `error: ...` with every fragment, no traceback.

    With `progress`, training's plain progress lines ("step 100/400 ...") may come before it.
    """
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # not an escaped exception
    lines = result.stderr.strip().splitlines()
    if progress:
        lines = [line for line in lines if not line.startswith("step ")]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def fail_with(*args: object, fragments: tuple[str, ...] = (), code: int = 1, progress: bool = False) -> str:
    return assert_one_line_error(cli(*args, code=code), *fragments, code=code, progress=progress)


def assert_same_run(a: Checkpoint, b: Checkpoint) -> None:
    """Bit-identical: every tensor, the generator state, the step and the final losses."""
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name
    assert torch.equal(a.generator_state, b.generator_state)
    assert (a.step, a.losses, a.model_config, a.train_config) == (b.step, b.losses, b.model_config, b.train_config)


def same_run_on_disk(path_a: Path, path_b: Path) -> None:
    assert_same_run(load_checkpoint(path_a), load_checkpoint(path_b))


def subprocess_env() -> dict[str, str]:
    """The environment for `python -m bnnames` in a child: one thread (fast under load, and the
    same arithmetic as the in-process runs, which conftest pins to one thread)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BNNAMES_")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


BNNAMES = (sys.executable, "-m", "bnnames")


def read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in, even as root (who ignores mode bits)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir(mode=0o555)
        return folder
    for candidate in (Path("/sys"), Path("/proc/sys")):  # read-only file systems for root too
        try:
            (candidate / ".bnnames-probe").touch()
        except OSError:
            return candidate
    pytest.skip("no folder here refuses writes by root")


def interrupt_after(at: int, action: Callable[[], None]) -> Callable[[], None]:
    """Make `bnnames.training.run` call `action()` right after training step `at` is done; returns an undo.

    Wraps the training loop that bnnames.training.run calls (`train_steps`, or each loop `make_trainer` builds),
    splitting the call whose range holds `at`; `action` sends a real signal (signal_driver.py) or
    sets the stop flag of an in-process run.
    """
    import bnnames.training.run

    name = "make_trainer" if hasattr(bnnames.training.run, "make_trainer") else "train_steps"
    real = getattr(bnnames.training.run, name)
    if name == "make_trainer":
        setattr(bnnames.training.run, name, lambda *args, **kwargs: _split_at(real(*args, **kwargs), at, action))
    else:
        setattr(bnnames.training.run, name, _split_at(real, at, action))
    return lambda: setattr(bnnames.training.run, name, real)


def _split_at(loop: Callable[..., int], at: int, action: Callable[[], None]) -> Callable[..., int]:
    signature = inspect.signature(loop)

    def wrapper(*args: Any, **kwargs: Any) -> int:
        bound = signature.bind(*args, **kwargs)
        start, stop = bound.arguments["start"], bound.arguments["stop"]
        if start < at <= stop:
            bound.arguments["stop"] = at
            done = loop(*bound.args, **bound.kwargs)
            if done == at:
                action()
            bound.arguments["start"], bound.arguments["stop"] = done, stop
        return loop(*bound.args, **bound.kwargs)

    return wrapper


class Quiet:
    """A Progress that shows nothing, remembers the last step it saw and keeps the notes,
    the evaluations and the sample previews."""

    def __init__(self) -> None:
        self.step, self.notes, self.points, self.shown = 0, [], [], []

    def start(self, done: int, total: int) -> None:
        self.step = done

    def update(self, step: int, loss: float, lr: float) -> None:
        self.step = step

    def evaluated(self, point, best) -> None:  # type: ignore[no-untyped-def]
        self.points.append(point)

    def samples(self, step: int, names: list[tuple[str, str]]) -> None:
        self.shown.append((step, names))

    def note(self, message: str) -> None:
        self.notes.append(message)


def train_split(names_path: Path, block_size: int = 3) -> tuple[torch.Tensor, torch.Tensor, int]:
    dataset = load_dataset(names_path, 42, block_size)
    x, y = dataset.examples("train")
    return x, y, dataset.vocab.size


def fresh(config: ModelConfig, vocab_size: int, seed: int = 2147483647) -> tuple[NamesModel, torch.Generator]:
    """A model drawn as a run draws it, and the generator that then draws its batches."""
    generator = torch.Generator().manual_seed(seed)
    return create_model(config, vocab_size, generator), generator


def record(losses: list[tuple[int, float]]):  # type: ignore[no-untyped-def]
    return lambda step, loss, lr: losses.append((step, loss))


def state(model: NamesModel, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Everything a checkpoint holds, for torch.equal comparisons."""
    return {**{k: v.clone() for k, v in model.state_dict().items()}, "generator": generator.get_state()}


def assert_equal_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


SHORT = dataclasses.replace(TrainConfig(), steps=100, decay_at=60)  # the decay falls inside the run
