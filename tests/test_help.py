"""`--help` of every verb, as a newcomer reads it at 80 and 120 columns: paragraphs that
rewrap to the terminal, nothing wider than it, flags without a metavar, defaults as written."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bnnames.cli import make_app

VERBS = ["train", "calibrate", "eval", "sample", "score", "export", "diagnose", "compare", "cache"]
WIDTHS = [80, 120]


def render_help(*verb: str, width: int) -> list[str]:
    result = CliRunner().invoke(make_app(), [*verb, "--help"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def paragraphs(lines: list[str]) -> list[list[str]]:
    """The description's paragraphs: the text between the usage line and the first panel."""
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Usage:")) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("╭"))
    found: list[list[str]] = [[]]
    for line in lines[start:end]:
        if line.strip():
            found[-1].append(line.strip())
        elif found[-1]:
            found.append([])
    return [p for p in found if p]


def assert_filled(paragraph: list[str], width: int) -> None:
    """Each line but the last is full: its next line's first word would not have fitted on it."""
    for line, after in zip(paragraph, paragraph[1:]):
        assert len(line) + 1 + len(after.split()[0]) > width, (width, line, after)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("verb", [*VERBS, None], ids=[*VERBS, "root"])
def test_help_fits_the_terminal_and_its_paragraphs_rewrap(verb: str | None, width: int) -> None:
    lines = render_help(*([verb] if verb else []), width=width)
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    found = paragraphs(lines)
    assert found
    for paragraph in found:
        assert_filled(paragraph, width - 2)  # rich pads the description by one column each side


@pytest.mark.parametrize("width", WIDTHS)
def test_the_root_command_list_rewraps_each_description(width: int) -> None:
    """Each command's first paragraph, in the root's list, filled to its column."""
    lines = render_help(width=width)
    start = next(i for i, line in enumerate(lines) if "Commands" in line and line.startswith("╭"))
    rows = [line[1:-1] for line in lines[start + 1 :] if line.startswith("│")]
    column = rows[0].index("Train a model")  # where the descriptions start
    cells: list[list[str]] = []
    for row in rows:
        if row[:column].strip():
            cells.append([])
        cells[-1].append(row[column:].strip())
    assert len(cells) == len(VERBS)
    for cell in cells:
        assert_filled(cell, len(rows[0]) - column - 1)


def verb_params() -> list[tuple[str, typer.Context, Any]]:
    """(verb, context, parameter) for every parameter of every verb and the root, --help included."""
    root = typer.main.get_command(make_app())
    root_ctx = typer.Context(root)
    found = [("root", root_ctx, p) for p in root.get_params(root_ctx)]
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        ctx = typer.Context(command, parent=root_ctx)
        found += [(name, ctx, p) for p in command.get_params(ctx)]
    return found


def test_flags_show_no_metavar_and_values_show_what_they_take() -> None:
    for verb, ctx, param in verb_params():
        shown = param.display_type_rich(ctx)
        if getattr(param, "is_flag", False):
            assert shown == "", (verb, param.name, shown)
            continue
        kind = param.type_descriptor
        if kind.choices is not None and shown == param.name.upper():  # many choices: named, listed in the help
            assert all(choice in param.help for choice in kind.choices), (verb, param.name, param.help)
        elif kind.choices is not None:
            assert shown == "[" + "|".join(kind.choices) + "]", (verb, param.name, shown)
        else:
            assert shown in ("INTEGER", "FLOAT", "PATH", "TEXT"), (verb, param.name, shown)


@pytest.mark.parametrize("verb", [*VERBS, None], ids=[*VERBS, "root"])
def test_help_has_no_angle_bracket_types_and_no_parenthesised_defaults(verb: str | None) -> None:
    text = "\n".join(render_help(*([verb] if verb else []), width=200))
    assert not re.search(r"<(bool|int|float|str|path|list)", text), text
    assert "[default: (" not in text and "(default)" not in text, text
    assert "[default: False]" not in text and "[default: True]" not in text, text  # a flag pair says off/on


def test_a_flag_row_goes_straight_from_the_option_to_its_help() -> None:
    rows = {line.split()[1]: line for line in render_help("sample", width=200) if line.startswith("│ --")}
    assert rows["--novel"].split()[2] == "Only"  # no metavar between --novel and its help
    assert rows["--count"].split()[3:5] == ["INTEGER", "How"]  # --count -n INTEGER How many names.
    assert rows["--temperature"].split()[2] == "FLOAT"
    assert rows["--prefix"].split()[2] == "TEXT"
    assert rows["--checkpoint"].split()[3] == "PATH"
    assert rows["--device"].split()[2] == "[auto|cpu|cuda|mps]"


def test_checkpoint_help_says_what_each_verb_does_with_the_file() -> None:
    """Read-only verbs read it; train writes it (and reads it on --resume); calibrate reads and stores into it."""
    helps = {verb: p.help for verb, _, p in verb_params() if p.name == "checkpoint"}
    assert set(helps) == set(VERBS) - {"cache", "compare"}  # compare takes checkpoints as arguments
    for verb in ("eval", "sample", "score", "diagnose"):
        assert "to read" in helps[verb] and "write" not in helps[verb] and "store" not in helps[verb], verb
    assert "to write" in helps["train"] and "--resume" in helps["train"]
    assert "to read" in helps["calibrate"] and "store" in helps["calibrate"]
