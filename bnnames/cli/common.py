"""What every command shares: the checkpoint, device and data options, and one-line errors."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer
from rich.console import Console
from rich.table import Table

from bnnames.cli.signals import exit_code, terminate_as_interrupt
from bnnames.config import Device, Stats, Weights
from bnnames.errors import BnnamesError

CHECKPOINT_ENV = "BNNAMES_CHECKPOINT"
DEFAULT_CHECKPOINT = "bnnames.safetensors"
PLAIN_WIDTH = 1_000  # stdout's width in a pipe or a file: wide enough that no table row wraps


def _checkpoint(help: str) -> Any:
    """The -c/--checkpoint option (or $BNNAMES_CHECKPOINT); `help` says what the verb does with the file."""
    return typer.Option("--checkpoint", "-c", envvar=CHECKPOINT_ENV, help=help, dir_okay=True, show_envvar=True)


CheckpointOpt = Annotated[Path, _checkpoint("Checkpoint file to read.")]  # eval, sample, score, diagnose
WrittenCheckpointOpt = Annotated[  # train
    Path, _checkpoint("Checkpoint file to write (with --resume: to read, then continue).")
]
CalibratedCheckpointOpt = Annotated[  # calibrate
    Path, _checkpoint("Checkpoint file to read, and to store the calibrated statistics in.")
]
DeviceOpt = Annotated[
    Device,
    typer.Option("--device", help="Where to compute (auto: the CPU, or CUDA for a training step big enough to pay)."),
]
DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data", help="Names file to use instead of the one stored in the checkpoint.", show_default="the checkpoint's"
    ),
]

WeightsOpt = Annotated[
    Weights | None,
    typer.Option(
        help="Which weights: best (the evaluation with the lowest val loss) or last (the last step).",
        show_default="best when kept",
    ),
]
StatsOpt = Annotated[
    Stats | None,
    typer.Option(help="BatchNorm statistics.", show_default="calibrated when present"),
]

F = TypeVar("F", bound=Callable[..., Any])


def config_options(*panels: tuple[type, str]) -> Callable[[F], F]:
    """Give a command one option per field of each (config class, help panel), and pass the ones
    the user set as `overrides={field: value}`. Each knob is declared once, in bnnames.config:
    its name, type (a Literal is a choice), default (shown in --help) and help text.
    """

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        parameters = [p for p in signature.parameters.values() if p.name != "overrides"]
        names: list[str] = []
        for cls, panel in panels:
            hints, defaults = get_type_hints(cls), cls()
            for f in dataclasses.fields(cls):
                default = getattr(defaults, f.name)
                shown = _shown(default)
                option = typer.Option(help=f.metadata["help"], show_default=shown, rich_help_panel=panel)
                annotation = Annotated[hints[f.name] | None, option]  # None: not given, the preset decides
                parameters.append(
                    inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
                )
                names.append(f.name)

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in names}
            return command(*args, overrides={k: v for k, v in given.items() if v is not None}, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _shown(default: object) -> str:
    """A knob's default as --help shows it: on/off for a flag pair, 4 significant digits for a float."""
    if isinstance(default, bool):
        return "on" if default else "off"
    return f"{default:.4g}" if isinstance(default, float) else str(default)


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout() -> Console:
    """Rich on a terminal; in a pipe or a file, plain text (no colour) and lines never wrapped, so
    that each table row stays one line for grep, cut or a spreadsheet."""
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = PLAIN_WIDTH
    return console


def make_table(*headers: str, title: str | None = None, **options: Any) -> Table:
    """A table for stdout (`options`: rich's Table's): boxed on a terminal; in a pipe or a file,
    columns aligned with spaces and no box drawing."""
    if stdout().is_terminal:
        return Table(*headers, title=title, **options)
    return Table(*headers, title=title, **{**options, "box": None, "pad_edge": False})


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one line on stderr and give the exit to raise."""
    stderr().print(f"[bold red]error:[/] {message}", soft_wrap=True, markup=True)
    return typer.Exit(code)


def note(message: str) -> None:
    stderr().print(f"[yellow]note:[/] {message}", soft_wrap=True)


def one_line_errors(command: F) -> F:
    """Turn the project's errors, and any bug, into one line on stderr and exit code 1
    (a Ctrl-C or SIGTERM: "interrupted", exit 130 or 143; see bnnames.cli.signals).

    `bnnames --debug ...` (or BNNAMES_DEBUG=1) lets the traceback through instead. The
    command takes the Typer context as `ctx` so the root's --debug flag can be read.
    """

    @functools.wraps(command)
    def wrapper(ctx: typer.Context, *args: Any, **kwargs: Any) -> Any:
        debug = os.environ.get("BNNAMES_DEBUG") == "1" or bool(ctx.find_root().params.get("debug"))
        try:
            with terminate_as_interrupt():
                return command(ctx, *args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except BnnamesError as err:
            if debug:
                raise
            raise fail(_escape(str(err))) from None
        except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: files already cleaned up on the way out
            raise fail("interrupted", code=exit_code(err)) from None
        except Exception as err:  # a bug: still one line, with the way to see more
            if debug:
                raise
            raise fail(_escape(f"internal error: {type(err).__name__}: {err} (run with --debug for details)")) from None

    return wrapper  # type: ignore[return-value]


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(" ".join(text.split()))  # one line, and no accidental rich markup
