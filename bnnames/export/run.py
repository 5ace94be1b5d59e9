"""The export verb: a checkpoint's model, as `sample` and `score` use it, written as ONNX or a web page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bnnames.errors import ConfigError
from bnnames.export.network import Network, network_of
from bnnames.model import NamesModel
from bnnames.storage.checkpoint import Checkpoint
from bnnames.storage.files import atomic_write_bytes, check_writable_folder

FORMATS = {".onnx": "onnx", ".html": "html", ".htm": "html"}  # what -o's suffix implies


@dataclass(frozen=True)
class ExportReport:
    path: Path
    format: str
    bytes: int
    parameters: int
    stats: str  # the BatchNorm statistics folded in: "running", "calibrated" or "none"


def format_for(fmt: str | None, out: Path) -> str:
    """The format asked for, else the one -o's suffix names."""
    known = list(dict.fromkeys(FORMATS.values()))  # onnx, html
    if fmt is None:
        fmt = FORMATS.get(out.suffix.lower())
        if fmt is None:
            raise ConfigError(f"say which format to write: --format {' or '.join(known)} (or name -o *.onnx, *.html)")
    if fmt not in known:
        raise ConfigError(f"unknown --format {fmt!r}: choose one of {', '.join(known)}")
    return fmt


def export_model(
    ckpt: Checkpoint, model: NamesModel, kind: str, title: str, out: Path, fmt: str | None = None
) -> ExportReport:
    """Write `model` (a checkpoint's chosen weights, statistics `kind`) to `out` as `fmt`, atomically."""
    fmt = format_for(fmt, out)
    check_writable_folder(out, f"{fmt} export", "-o")
    network = network_of(model, ckpt.vocab, ckpt.model_config.block_size)
    data = _render(network, fmt, title=title)
    try:
        atomic_write_bytes(out, data)
    except OSError as err:
        raise ConfigError(f"cannot write {out}: {err.strerror or err}") from None
    return ExportReport(out, fmt, len(data), network.parameters, kind)


def _render(network: Network, fmt: str, title: str) -> bytes:
    if fmt == "onnx":
        from bnnames.export.onnx import onnx_bytes

        return onnx_bytes(network)
    from bnnames.export.html import page_html

    return page_html(network, title).encode("utf-8")
