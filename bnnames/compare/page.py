"""The comparison's page: index.md with the table, the warnings and the figures beside it."""

from __future__ import annotations

from pathlib import Path

from bnnames.compare.runs import Comparison
from bnnames.compare.table import table_rows
from bnnames.errors import DiagnosticsError
from bnnames.storage.files import atomic_write_bytes

CAPTIONS = {
    "loss.png": "Train and val loss against steps (log scale), from each checkpoint's history.",
    "activations.png": "Each tanh layer's activation distribution, one training batch of the last weights.",
    "update_ratio.png": "The update:data ratio of each weight matrix over training (runs recorded with "
    "`--diagnostics-every`).",
}


def markdown_table(comparison: Comparison) -> str:
    labels = [run.label for run in comparison.runs]
    lines = ["| | " + " | ".join(_cell(label) for label in labels) + " |", "|---|" + "---:|" * len(labels)]
    for row in table_rows(comparison):
        if row.cells is None:
            lines.append(f"| **{_cell(row.label)}** |" + " |" * len(labels))
        else:
            lines.append(f"| {_cell(row.label.strip())} | " + " | ".join(_cell(c) for c in row.cells) + " |")
    return "\n".join(lines)


def write_page(comparison: Comparison, out: Path, figures: list[Path], note: str | None = None) -> Path:
    """index.md in `out`, showing `figures` (files in `out`); `note` says why some are missing."""
    parts = [
        "# bnnames compare",
        "",
        "Runs: " + ", ".join(f"`{run.path}` as **{run.label}**" for run in comparison.runs),
    ]
    parts += ["", *(f"> warning: {w}" for w in comparison.warnings)] if comparison.warnings else []
    parts += ["", markdown_table(comparison), ""]
    if note:
        parts += [f"> {note}", ""]
    for figure in figures:
        parts += [f"![{figure.stem}]({figure.name})", "", CAPTIONS.get(figure.name, ""), ""]
    path = out / "index.md"
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, "\n".join(parts).encode("utf-8"))
    except OSError as err:
        raise DiagnosticsError(f"cannot write {path}: {err.strerror or err}") from None
    return path


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
