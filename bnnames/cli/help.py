"""How `--help` reads, for every verb and the root: paragraphs that rewrap to the terminal,
metavars named for what an option takes, defaults without Typer's parentheses.

Typer keeps the line breaks of a docstring's later paragraphs (and of the root's command list),
so source lines wrapped at 100 columns came out ragged at 80: the Command and Group classes
join each paragraph into one line, and rich wraps it to the terminal's width. Typer also shows
`<bool>` after every flag, `<int>` after a number and `[default: (off)]` for a described default;
here they read `--novel`, `--count INTEGER`, `--device [auto|cpu|cuda|mps]` and `[default: off]`.
"""

from __future__ import annotations

import inspect
from typing import Any, get_args

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption, _TyperParameter

TYPE_NAMES = {int: "INTEGER", float: "FLOAT", str: "TEXT"}  # click's names, as most CLIs show them
# A longer list of choices is shown by the option's name (its help lists them): at 80 columns a
# metavar column as wide as [default|lecture|deep|wavenet|best] squeezed every help beside it.
CHOICES_WIDTH = 20


def reflowed(text: str | None) -> str | None:
    """`text` with each paragraph (blank-line separated) on one line, for rich to wrap."""
    if text is None:
        return None
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


def type_name(param: TyperOption | TyperArgument) -> str:
    """What a parameter takes: nothing for a flag, the choices (or for many, the option's name), else its type."""
    if isinstance(param, TyperOption) and (param.is_flag or param.count):
        return ""
    kind = param.type_descriptor
    if kind.choices is not None:
        listed = "[" + "|".join(map(str, kind.choices)) + "]"
        return listed if len(listed) <= CHOICES_WIDTH else (param.name or "").upper()
    if kind.is_path:
        return "PATH"
    inner = get_args(kind.annotation)[0] if kind.is_list else kind.annotation
    return TYPE_NAMES.get(inner, getattr(inner, "__name__", str(inner)).upper())


class _DescribedDefault(_TyperParameter):
    """A default described in words (`show_default="off"`) shown as written: Typer put it in parentheses."""

    def _get_default_string(self, *, ctx: typer.Context, show_default_is_str: bool, default_value: Any) -> str:
        if show_default_is_str:
            return str(self.show_default)
        return super()._get_default_string(  # type: ignore[misc]
            ctx=ctx, show_default_is_str=False, default_value=default_value
        )


class HelpOption(_DescribedDefault, TyperOption):
    """An option as --help shows it: its metavar (else `type_name`), a described default as written."""

    def display_type_rich(self, ctx: typer.Context) -> str | None:
        return self.metavar if self.metavar is not None else type_name(self)


class HelpArgument(_DescribedDefault, TyperArgument):
    """An argument as --help shows it: its name in capitals, `type_name`, a described default as written."""

    @property
    def display_name_raw(self) -> str:
        return self.metavar if self.metavar is not None else (self.name or "").upper()

    def display_type_rich(self, ctx: typer.Context) -> str | None:
        return type_name(self)


class _ReadableHelp:
    """What Command and Group share: the help reflowed when built, the parameters shown as above."""

    def __init__(self, *args: Any, help: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, help=reflowed(help), **kwargs)  # type: ignore[call-arg]

    def get_params(self, ctx: typer.Context) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:  # Typer makes its own classes, with no hook for ours (--help's, late): swapped
            if type(param) is TyperOption:
                param.__class__ = HelpOption
            elif type(param) is TyperArgument:
                param.__class__ = HelpArgument
        return params


class Command(_ReadableHelp, TyperCommand):
    """A verb whose --help reads well at any width."""


class Group(_ReadableHelp, TyperGroup):
    """The root command, whose --help reads well at any width."""
