"""`bnnames train`: parse options, run the training, show progress and the final losses."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from bnnames.cli.common import DEFAULT_CHECKPOINT, CheckpointOpt, DeviceOpt, note, one_line_errors, stdout
from bnnames.config import ARCHS, BN_STYLES, ENGINES, NORMS, OUT_INITS, PRESETS, SAVE_EVERY, ModelConfig, TrainConfig

M, T = ModelConfig(), TrainConfig()  # the defaults, shown in --help (options left unset stay None)


def _opt(help: str, default: Any, panel: str) -> Any:
    return typer.Option(help=help, show_default=str(default), rich_help_panel=panel)


MODEL, OPTIM = "Model (default preset values shown)", "Training (default preset values shown)"


@one_line_errors
def train(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Argument(help="Names file, one name a line.", show_default="data/names.txt, downloaded if missing")] = None,
    checkpoint: CheckpointOpt = Path(DEFAULT_CHECKPOINT),
    device: DeviceOpt = "auto",
    preset: Annotated[str | None, typer.Option(help=f"Starting settings: {', '.join(PRESETS)}.", show_default="default")] = None,
    arch: Annotated[str | None, _opt(f"Architecture: {', '.join(ARCHS)}.", M.arch, MODEL)] = None,
    block_size: Annotated[int | None, _opt("Context length in characters.", M.block_size, MODEL)] = None,
    n_embd: Annotated[int | None, _opt("Embedding width per character.", M.n_embd, MODEL)] = None,
    n_hidden: Annotated[int | None, _opt("Width of each hidden layer.", M.n_hidden, MODEL)] = None,
    n_layers: Annotated[int | None, _opt("Number of hidden Linear-BatchNorm-tanh layers.", M.n_layers, MODEL)] = None,
    norm: Annotated[str | None, _opt(f"Normalisation: {', '.join(NORMS)} (none also sets --gain 5/3 unless given).", M.norm, MODEL)] = None,
    norm_logits: Annotated[bool | None, _opt("A BatchNorm on the logits too.", M.norm_logits, MODEL)] = None,
    gain: Annotated[float | None, _opt("Init gain of hidden Linear layers: N(0,1) * gain / sqrt(fan_in).", f"{M.gain:.4g}", MODEL)] = None,
    bn_style: Annotated[str | None, _opt(f"BatchNorm arithmetic: {', '.join(BN_STYLES)}.", M.bn_style, MODEL)] = None,
    bn_momentum: Annotated[float | None, _opt("Momentum of the running statistics.", M.bn_momentum, MODEL)] = None,
    bn_eps: Annotated[float | None, _opt("BatchNorm epsilon (paper style).", M.bn_eps, MODEL)] = None,
    out_scale: Annotated[float | None, _opt("Scale of the output layer's initial weights (or logits' BatchNorm gain).", M.out_scale, MODEL)] = None,
    out_init: Annotated[str | None, _opt(f"Output init: {', '.join(OUT_INITS)} (kaiming divides by sqrt(fan_in)).", M.out_init, MODEL)] = None,
    steps: Annotated[int | None, _opt("Total optimisation steps of the run.", T.steps, OPTIM)] = None,
    batch_size: Annotated[int | None, _opt("Examples per mini-batch (at least 2).", T.batch_size, OPTIM)] = None,
    lr: Annotated[float | None, _opt("Learning rate.", T.lr, OPTIM)] = None,
    decay_at: Annotated[int | None, _opt("Step from which the learning rate is lr * decay.", T.decay_at, OPTIM)] = None,
    decay: Annotated[float | None, _opt("Learning-rate decay factor.", T.decay, OPTIM)] = None,
    seed: Annotated[int | None, _opt("Seed of the init and the mini-batches.", T.seed, OPTIM)] = None,
    split_seed: Annotated[int | None, _opt("Seed of the train/val/test shuffle.", T.split_seed, OPTIM)] = None,
    engine: Annotated[str | None, _opt(f"Training loop: {', '.join(ENGINES)} (auto: compiled for long runs on the CPU).", T.engine, OPTIM)] = None,
    save_every: Annotated[int, typer.Option(help="Save a resumable checkpoint every N steps.")] = SAVE_EVERY,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing checkpoint.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the checkpoint's run to --steps, with its settings.")] = False,
    tensorboard: Annotated[Path | None, typer.Option(help="Log Loss/train to this TensorBoard folder.", show_default=False)] = None,
    diagnostics_every: Annotated[int | None, typer.Option(min=1, help="Record activation, gradient and update statistics every N steps beside the checkpoint (see `bnnames diagnose`).", show_default="off")] = None,
) -> None:
    """Train a model on a names file and write the checkpoint (atomically, and every --save-every steps).

    Ctrl-C saves a resumable checkpoint; `bnnames train --resume` continues it exactly.
    """
    from bnnames.cli.progress import TrainProgress
    from bnnames.run import TrainRequest, run_training

    settings = dict(arch=arch, block_size=block_size, n_embd=n_embd, n_hidden=n_hidden, n_layers=n_layers,
                    norm=norm, norm_logits=norm_logits, gain=gain, bn_style=bn_style, bn_momentum=bn_momentum,
                    bn_eps=bn_eps, out_scale=out_scale, out_init=out_init,
                    steps=steps, batch_size=batch_size, lr=lr, decay_at=decay_at, decay=decay, seed=seed,
                    split_seed=split_seed, engine=engine)  # fmt: skip
    request = TrainRequest(
        checkpoint=checkpoint, data=data, preset=preset, device=device, overwrite=overwrite, resume=resume,
        overrides={k: v for k, v in settings.items() if v is not None}, save_every=save_every, tensorboard=tensorboard,
        diagnostics_every=diagnostics_every,
    )  # fmt: skip
    received: list[int] = []
    started = time.perf_counter()
    with _stop_on_signals(received), TrainProgress() as progress:
        result = run_training(request, progress, should_stop=lambda: bool(received))
    if result.status == "already complete":
        note(f"{checkpoint} is already trained to step {result.step}: nothing to do (raise --steps to train longer)")
        return
    if result.status == "not started":
        note("interrupted before the first step: nothing was written")
        raise typer.Exit(128 + received[0])
    if result.status == "interrupted":
        note(f"interrupted at step {result.step}; saved {checkpoint}. Continue with: bnnames train --resume -c {checkpoint}")
        raise typer.Exit(128 + received[0])
    out = stdout()
    out.print(f"trained {result.step:,} steps in {time.perf_counter() - started:.1f} s -> {checkpoint}")
    stats = ", running BatchNorm statistics" if result.model_config.uses_batch_norm else ""
    out.print(f"train loss {result.losses['train']:.4f}   val loss {result.losses['val']:.4f}   (nats{stats})")


class _stop_on_signals:
    """Record SIGINT/SIGTERM instead of dying, so the run can save; a second signal is fatal."""

    def __init__(self, received: list[int]) -> None:
        self.received = received
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)  # the next Ctrl-C stops at once

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
