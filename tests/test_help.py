"""`--help` of every verb, as a newcomer reads it at 80 and 120 columns: paragraphs that
rewrap to the terminal, nothing wider than it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bnnames.cli import make_app

VERBS = ["train", "calibrate", "eval", "sample", "score", "diagnose", "cache"]
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
