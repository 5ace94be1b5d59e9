"""How `--help` reads: paragraphs that rewrap to the terminal, for every verb and the root.

Typer keeps the line breaks of a docstring's later paragraphs (and of the root's command list),
so source lines wrapped at 100 columns came out ragged at 80. The Command and Group classes
here join each paragraph into one line once, when the command is built, and rich wraps it to
the terminal's width.
"""

from __future__ import annotations

import inspect
from typing import Any

from typer.core import TyperCommand, TyperGroup


def reflowed(text: str | None) -> str | None:
    """`text` with each paragraph (blank-line separated) on one line, for rich to wrap."""
    if text is None:
        return None
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


class Command(TyperCommand):
    """A verb whose help paragraphs rewrap to the terminal."""

    def __init__(self, *args: Any, help: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, help=reflowed(help), **kwargs)


class Group(TyperGroup):
    """The root command, whose help paragraphs rewrap to the terminal."""

    def __init__(self, *args: Any, help: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, help=reflowed(help), **kwargs)
