"""The `bnnames` command: this module only builds the Typer app and registers the verbs.

Nothing here imports torch, so `bnnames --help` and `--version` answer at once; each verb
imports the library it calls inside its own function.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bnnames import __version__
from bnnames.cli.cache import cache
from bnnames.cli.calibrate import calibrate
from bnnames.cli.compare import compare
from bnnames.cli.diagnose import diagnose
from bnnames.cli.evaluate import evaluate
from bnnames.cli.export import export
from bnnames.cli.help import Command, Group
from bnnames.cli.sample import sample
from bnnames.cli.score import score
from bnnames.cli.train import train


def _version(value: bool) -> None:
    if value:
        print(f"bnnames {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors (or BNNAMES_DEBUG=1).")
    ] = False,
) -> None:
    """Train, calibrate, evaluate and sample character-level name models with Batch Normalization."""


def make_app() -> typer.Typer:
    app = typer.Typer(
        cls=Group,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for name, verb in [
        ("train", train),
        ("calibrate", calibrate),
        ("eval", evaluate),
        ("sample", sample),
        ("score", score),
        ("export", export),
        ("diagnose", diagnose),
        ("compare", compare),
        ("cache", cache),
    ]:
        app.command(name, cls=Command)(verb)
    return app


def main() -> None:
    make_app()(prog_name="bnnames")
