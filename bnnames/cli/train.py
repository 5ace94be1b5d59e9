"""`bnnames train`: parse options, run the training, show progress and the final losses."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from bnnames.cli.common import (
    DEFAULT_CHECKPOINT,
    DeviceOpt,
    WrittenCheckpointOpt,
    config_options,
    note,
    one_line_errors,
    stdout,
)
from bnnames.cli.signals import stop_on_signals
from bnnames.config import SAVE_EVERY, ModelConfig, PresetName, TrainConfig

MODEL, OPTIM = "Model (default preset values shown)", "Training (default preset values shown)"


@one_line_errors
@config_options((ModelConfig, MODEL), (TrainConfig, OPTIM))
def train(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Argument(help="Names file, one name a line.", show_default="data/names.txt, downloaded if missing"),
    ] = None,
    checkpoint: WrittenCheckpointOpt = Path(DEFAULT_CHECKPOINT),
    device: DeviceOpt = "auto",
    preset: Annotated[
        PresetName | None,
        typer.Option(
            help="Starting settings: default, lecture, deep, wavenet or best (see docs/models.md); "
            "the options below override them.",
            show_default="default, or the checkpoint's with --resume",
        ),
    ] = None,
    save_every: Annotated[int, typer.Option(help="Save a resumable checkpoint every N steps.")] = SAVE_EVERY,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing checkpoint.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the checkpoint's run to --steps, with its settings.")
    ] = False,
    tensorboard: Annotated[
        Path | None, typer.Option(help="Log Loss/train to this TensorBoard folder.", show_default=False)
    ] = None,
    diagnostics_every: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Record activation, gradient and update statistics every N steps beside the checkpoint "
            "(see `bnnames diagnose`).",
            show_default="off",
        ),
    ] = None,
    sample_every: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Show a few sampled names every N steps, each marked train, val/test or new (the run is unchanged).",
            show_default="off",
        ),
    ] = None,
    overrides: dict[str, Any] | None = None,  # the model and training options the user set (config_options)
) -> None:
    """Train a model on a names file and write the checkpoint (atomically, and every --save-every steps).

    The val loss is measured every --eval-every steps; the checkpoint keeps the weights of the best
    evaluation (what eval, sample and calibrate use) beside the last step's. By default the lr decays
    when val stops improving and the run stops at the next plateau. Ctrl-C saves a resumable
    checkpoint; `bnnames train --resume` continues it exactly.
    """
    from bnnames.cli.progress import TrainProgress
    from bnnames.training.run import TrainRequest, run_training

    request = TrainRequest(
        checkpoint=checkpoint,
        data=data,
        preset=preset,
        device=device,
        overwrite=overwrite,
        resume=resume,
        overrides=overrides or {},
        save_every=save_every,
        tensorboard=tensorboard,
        diagnostics_every=diagnostics_every,
        sample_every=sample_every,
    )
    received: list[int] = []
    started = time.perf_counter()
    with stop_on_signals(received), TrainProgress() as progress:
        result = run_training(request, progress, should_stop=lambda: bool(received))
    if result.status == "already complete":
        if result.curve.stopped:
            note(f"{checkpoint} stopped at a val plateau at step {result.step:,}: nothing to do")
        else:
            note(
                f"{checkpoint} is already trained to step {result.step}: nothing to do (raise --steps to train longer)"
            )
        return
    if result.status == "not started":
        note("interrupted before the first step: nothing was written")
        raise typer.Exit(128 + received[0])
    if result.status == "interrupted":
        resume = f"bnnames train --resume -c {checkpoint}"
        note(f"interrupted at step {result.step}; saved {checkpoint}. Continue with: {resume}")
        raise typer.Exit(128 + received[0])
    out = stdout()
    took = f"{time.perf_counter() - started:.1f} s -> {checkpoint}"
    if result.resumed_at is None:
        out.print(f"trained {result.step:,} steps in {took}")
    else:
        more = result.step - result.resumed_at
        out.print(f"resumed at step {result.resumed_at:,}, trained {more:,} more steps in {took}")
    stats = ", running BatchNorm statistics" if result.model_config.uses_batch_norm else ""
    out.print(f"train loss {result.losses['train']:.4f}   val loss {result.losses['val']:.4f}   (nats{stats})")
    best = result.curve.best
    if best is not None:
        ended = "stopped at a val plateau" if result.curve.stopped else "ran to --steps"
        out.print(
            f"best val {best.val:.4f} at step {best.step:,} (kept: eval, sample and calibrate use it); "
            f"last val {result.curve.points[-1].val:.4f}; {ended}"
        )
