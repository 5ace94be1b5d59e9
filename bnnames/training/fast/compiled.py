"""The training step compiled ahead of time into a native library that later runs load, not rebuild.

`torch.compile` keeps its compiled code between runs, but a warm start still imports the
compiler (~2.3 s on the project's machine), traces the step again and loads the code (~2 s),
and every call passes through guards and wrappers. Here the step is exported once
(`torch.export`) and compiled by AOTInductor into a package (a `.pt2` file: a shared library
and its metadata) in the lasting cache folder (`cache.py`). A later run loads it in
milliseconds, without importing the compiler, and calls it straight from C++; only from a private
folder, and only the bytes whose digest was recorded when it was compiled (`packages.py`).

One call is one SGD step, updating the parameters and BatchNorm buffers in place. Every step
runs the same code, so a run split into segments, interrupted or resumed is bit-identical to an
uninterrupted one.

A package is found by a key of everything its code depends on: the plan, the inputs' shapes
and dtypes, the weight decay, torch's version, the CPU's vector instructions and the source of
the step. The vocabulary's dimensions are symbolic, so a names file with another alphabet loads
the same package, over the range of vocabularies for which the step takes the same path
(`vocab_range`: the wavenet's first layer is computed one way below a size, another above).
Should a model tie another dimension to the vocabulary, the step is compiled for that one
vocabulary instead, which the key then holds.
"""

from __future__ import annotations

import hashlib
import os
import platform
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from bnnames import model as model_module
from bnnames.training.fast import packages
from bnnames.training.fast import plan as plan_module
from bnnames.training.fast import step as step_module
from bnnames.training.fast.cache import (
    cache_root,
    compile_cache,
    compile_cache_folder,
    trusted_folder,
    untrusted_because,
    untrusted_note,
)
from bnnames.training.fast.plan import Plan
from bnnames.training.fast.step import forward_backward, update_, vocab_range

FORMAT = 1  # bump when the inputs' layout below changes
PACKAGES = "steps"  # subfolder of the compile cache that holds the packages
# Memory planning: one pool for the step's intermediate tensors instead of an allocation each.
# No precompiled headers: a model's step is compiled once, so building them never pays back. No
# line tables (debug information for profilers): shorter compiles. (Measured: docs/performance.md.)
COMPILE_OPTIONS = {
    "memory_planning": True,
    "aot_inductor.precompile_headers": False,
    "aot_inductor.enable_line_tables": False,
}

# one step: (ctx (B, T), target (B,), keeps [(B, W)], lr 0-d) -> loss 0-d, updating the state in place
StepFn = Callable[[torch.Tensor, torch.Tensor, Sequence[torch.Tensor], torch.Tensor], torch.Tensor]


class _Step(nn.Module):
    """The step as a module over flat inputs (ctx, target, *keeps, lr, *params, *buffers), as
    `torch.export` takes them; parameters and buffers are inputs it mutates, not its own state."""

    def __init__(self, plan: Plan, keeps: int, params: int, norms: list[int], weight_decay: float) -> None:
        super().__init__()
        self.plan, self.keeps, self.params, self.norms, self.weight_decay = plan, keeps, params, norms, weight_decay

    def forward(self, ctx: torch.Tensor, target: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        keeps, lr, rest = list(rest[: self.keeps]), rest[self.keeps], list(rest[self.keeps + 1 :])
        params, flat = rest[: self.params], rest[self.params :]
        buffers = [flat[sum(self.norms[:i]) : sum(self.norms[: i + 1])] for i in range(len(self.norms))]
        loss, grads, stats = forward_backward(self.plan, params, ctx, target, keeps)
        update_(self.plan, params, buffers, grads, stats, lr, self.weight_decay)
        return loss


def native_step(
    plan: Plan,
    params: list[torch.Tensor],
    buffers: list[list[torch.Tensor]],
    batch: tuple[torch.Tensor, torch.Tensor, Sequence[torch.Tensor]],
    weight_decay: float,
    note: Callable[[str], None],
) -> StepFn:
    """The compiled step for these tensors, loaded from the cache or compiled into it (with a note).

    `batch` is one step's (ctx (B, T), target (B,), keeps [(B, W)]): only its shapes and dtypes are
    read. Raises whatever the compile raises (no C++ compiler, an inductor limit): the caller
    falls back to the eager step.
    """
    ctx, target, keeps = batch
    inputs = _inputs(params, buffers, batch)
    vocab = params[0].shape[0]
    sizes = vocab_range(plan, vocab, ctx.shape)  # the vocabularies a package compiled now serves
    run, folder = _cached(_keys(plan, inputs, vocab, weight_decay, sizes), note)
    if run is not None:
        return _bind(run, params, buffers)
    module = _Step(plan, len(keeps), len(params), [len(norm) for norm in buffers], weight_decay)
    with compile_cache(folder.parent if folder else None) as where, warnings.catch_warnings():
        note(f"compiling the training step for this CPU (seconds{', once: later runs load it' if folder else ''})")
        warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecation notices: not the user's
        exported, dynamic = _export(module, inputs, vocab, sizes)
        key = step_key(plan, inputs, vocab, weight_decay, sizes if dynamic else None)
        about = f"{_about(plan)}; batch {ctx.shape[0]}, vocab {_vocabs(sizes) if dynamic else vocab}"
        lasting = folder / f"{key}.pt2" if folder else None
        return _bind(_compile(exported, Path(where), lasting, about, note), params, buffers)


def _cached(keys: list[str], note: Callable[[str], None]) -> tuple[Callable | None, Path | None]:
    """The run function of the first package of `keys` in the cache that passes every check, and
    the folder to compile into: the cache's, or None for a private temporary one (said why)."""
    root = cache_root(os.environ)
    folder = trusted_folder(compile_cache_folder(os.environ) / PACKAGES, root, note)
    for key in keys if folder else ():
        path = folder / f"{key}.pt2"
        found = untrusted_because(path, root) or untrusted_because(packages.record_path(path), root)
        if found is not None:
            note(untrusted_note(found))
            return None, None
        with packages.verified_copy(path, note) as copy:
            if copy is not None:
                try:
                    return _load(copy), folder
                except Exception:  # noqa: BLE001 - a package this torch cannot load: compile it again, over it
                    note(f"the compiled step {path.name} in the cache could not be loaded: compiling it again")
    return None, folder


def _vocabs(sizes: tuple[int, int | None]) -> str:
    low, high = sizes
    return f"{low}+" if high is None else f"{low}-{high}"


def _about(plan: Plan) -> str:
    """A package's key in words, for `bnnames cache`: the step's layers."""
    kinds = [type(spec).__name__.removesuffix("Spec") for spec in plan.layers]
    return f"{len(kinds)} layers ({' '.join(kinds)}), torch {torch.__version__}"


def cached_package(
    plan: Plan,
    params: list[torch.Tensor],
    buffers: list[list[torch.Tensor]],
    batch: tuple[torch.Tensor, torch.Tensor, Sequence[torch.Tensor]],
    weight_decay: float,
) -> Path | None:
    """The package `native_step` would load for these tensors (dynamic first), without loading it; None if none."""
    inputs, vocab = _inputs(params, buffers, batch), params[0].shape[0]
    sizes = vocab_range(plan, vocab, batch[0].shape)
    folder = compile_cache_folder(os.environ) / PACKAGES
    for key in _keys(plan, inputs, vocab, weight_decay, sizes):
        path = folder / f"{key}.pt2"
        if path.is_file() and packages.record_path(path).is_file():  # (_cached checks both before a load)
            return path
    return None


def _keys(
    plan: Plan, inputs: list[torch.Tensor], vocab: int, weight_decay: float, sizes: tuple[int, int | None]
) -> list[str]:
    """The cache keys a step may be found under, in the order they are looked up: the package
    serving a range of vocabularies first, then the one for this vocabulary alone."""
    return [step_key(plan, inputs, vocab, weight_decay, sizes if dynamic else None) for dynamic in (True, False)]


def _inputs(
    params: list[torch.Tensor], buffers: list[list[torch.Tensor]], batch: tuple[torch.Tensor, torch.Tensor, Sequence]
) -> list[torch.Tensor]:
    """The step's flat inputs, as `_Step.forward` takes them (the lr a 0-d placeholder)."""
    ctx, target, keeps = batch
    lr = torch.tensor(0.0, dtype=params[0].dtype)
    return [ctx, target, *keeps, lr, *params, *(b for norm in buffers for b in norm)]


def _export(
    module: _Step, inputs: list[torch.Tensor], vocab: int, sizes: tuple[int, int | None]
) -> tuple[torch.export.ExportedProgram, bool]:
    """The step's graph, with the vocabulary's dimensions symbolic over `sizes` (True) or, when the
    model ties another size to the vocabulary (e.g. n_embd * block_size == vocab), static (False)."""
    try:
        return torch.export.export(module, tuple(inputs), dynamic_shapes=_shapes(inputs, vocab, sizes)), True
    except torch._dynamo.exc.UserError:  # "constraints violated (vocab)"
        return torch.export.export(module, tuple(inputs)), False


def step_key(
    plan: Plan, inputs: Sequence[torch.Tensor], vocab: int, weight_decay: float, sizes: tuple[int, int | None] | None
) -> str:
    """A name for the package that depends on everything the compiled code does (see the module doc);
    `sizes`: the vocabularies a dynamic package serves (`vocab_range`), None for a static one."""
    dynamic = sizes is not None
    shapes = [(tuple("V" if dynamic and s == vocab else s for s in t.shape), str(t.dtype)) for t in inputs]
    files = (model_module.__file__, plan_module.__file__, step_module.__file__, __file__)
    sources = b"".join(Path(str(f)).read_bytes() for f in files)
    machine = (torch.__version__, platform.machine(), _isa(), torch.get_num_threads())  # threads: baked into loops
    described = repr((FORMAT, plan, shapes, weight_decay, sizes or vocab, machine, COMPILE_OPTIONS))
    return hashlib.sha256(described.encode() + sources).hexdigest()[:32]


def _isa(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's instruction set extensions: the package is built for every one of them, and would
    crash on a CPU with fewer, as a cache folder shared between machines could offer it."""
    try:
        flags = next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):  # not Linux: the best torch itself knows
        flags = platform.processor()
    return f"{torch.backends.cpu.get_cpu_capability()} {flags}"


def _shapes(inputs: Sequence[torch.Tensor], vocab: int, sizes: tuple[int, int | None]) -> tuple:
    """torch.export's dynamic_shapes: the vocabulary's dimensions symbolic, over `sizes`."""
    low, high = sizes
    dim = torch.export.Dim("vocab", min=low) if high is None else torch.export.Dim("vocab", min=low, max=high)
    specs = [{i: dim for i, size in enumerate(t.shape) if size == vocab} or None for t in inputs]
    return (specs[0], specs[1], tuple(specs[2:]))  # as _Step.forward takes them: ctx, target, *rest


def _compile(
    exported: torch.export.ExportedProgram, folder: Path, lasting: Path | None, about: str, note: Callable[[str], None]
) -> Callable:
    """Compile `exported` into a package in `folder` (the cache's compile folder, or a private
    temporary one) and load it; with a `lasting` path, the package
    is then moved there whole (with its digest record, `packages.write_package`: two runs compiling
    at once never see half a file) and the cache pruned to its bound."""
    import torch._inductor  # here: only a compiling run imports the compiler

    with tempfile.TemporaryDirectory(dir=lasting.parent if lasting else folder, prefix=".compiling-") as into:
        package = Path(
            torch._inductor.aoti_compile_and_package(
                exported,
                package_path=str(Path(into) / "step.pt2"),
                inductor_configs=dict(COMPILE_OPTIONS),  # a copy: torch adds its own keys to it
            )
        )
        run = _load(package)  # loaded (extracted) from the folder this process just created
        if lasting is not None:
            packages.write_package(package, lasting, about)
            removed = packages.prune(folder, keep=lasting)
            if removed:
                freed = sum(entry.size for entry in removed)
                note(
                    f"the compile cache is full ({packages.LIMIT_BYTES // 1_000_000} MB): removed {len(removed)} "
                    f"least recently used entries ({freed / 1e6:.1f} MB)"
                )
    return run


def _load(path: Path) -> Callable:
    """The package's run function: list of input tensors -> list of outputs."""
    loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)
    return loader.run


def _bind(run: Callable, params: list[torch.Tensor], buffers: list[list[torch.Tensor]]) -> StepFn:
    """The step over these parameters and buffers (updated in place by each call)."""
    state = [*params, *(b for norm in buffers for b in norm)]

    def step(ctx: torch.Tensor, target: torch.Tensor, keeps: Sequence[torch.Tensor], lr: torch.Tensor) -> torch.Tensor:
        return run([ctx, target, *keeps, lr, *state])[0]

    return step
