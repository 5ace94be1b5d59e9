"""Reading a safetensors header without trusting it: bounded length, strict JSON, typed entries.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON, then the raw
tensor data. The JSON maps each tensor name to {"dtype", "shape", "data_offsets"} and may hold
"__metadata__" (string -> string). Everything here is checked before any tensor is read, so a
hostile file can make us parse at most MAX_HEADER_BYTES and allocate nothing else.
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from bnnames.errors import CheckpointError

MAX_HEADER_BYTES = 1 << 24  # a real header is a few KB (the vocabulary is the biggest part)


ITEM_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "F16": 2, "BF16": 2, "I32": 4, "F32": 4, "I64": 8, "F64": 8}


@dataclass(frozen=True)
class TensorEntry:
    dtype: str  # safetensors' name: "F32", "I64", "U8", ...
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        """The bytes of its data (unknown dtypes count 8 a value: an upper bound)."""
        return math.prod(self.shape) * ITEM_BYTES.get(self.dtype, 8)


@contextmanager
def open_checkpoint(path: Path) -> Iterator[BinaryIO]:
    """The checkpoint file, opened once: its header and its tensors must come from the same open
    file, since a running `train` may replace the file (atomically) between two opens."""
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise CheckpointError(f"{path} is a folder, not a checkpoint file")
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(f"{path} is not a regular file (a pipe or a device?): pass a checkpoint file")
        handle = open(path, "rb")  # noqa: SIM115 - closed below, after the caller's block
    except FileNotFoundError:
        raise CheckpointError(
            f"checkpoint {path} does not exist: train one with `bnnames train` or pass -c PATH"
        ) from None
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err.strerror or err}") from None
    with handle:
        yield handle


def read_header(handle: BinaryIO, path: Path) -> tuple[dict[str, str], dict[str, TensorEntry]]:
    """(metadata, tensor table) of an open safetensors file; every failure is a one-line CheckpointError."""
    raw = _header_bytes(handle, path)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # deep nesting: RecursionError
        raise CheckpointError(f"{path} is not a valid safetensors file (corrupt header)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a valid safetensors file (corrupt header)")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{path} is not a valid safetensors file (its metadata is not text)")
    return meta, {name: _entry(path, name, value) for name, value in header.items()}


def _header_bytes(handle: BinaryIO, path: Path) -> bytes:
    """The header's JSON bytes, read with bounds: never trust the length a file claims."""
    try:
        size = os.fstat(handle.fileno()).st_size
        handle.seek(0)
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path} is not a safetensors checkpoint (only {len(prefix)} bytes long)")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES:
            raise CheckpointError(
                f"{path} is not a valid safetensors file (it claims a {length:,}-byte header; "
                f"at most {MAX_HEADER_BYTES:,} are read)"
            )
        if length + 8 > size:
            raise CheckpointError(f"{path} is truncated or not a safetensors file (header runs past the end)")
        return handle.read(length)
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err.strerror or err}") from None


def _entry(path: Path, name: str, value: Any) -> TensorEntry:
    dtype = value.get("dtype") if isinstance(value, dict) else None
    shape = value.get("shape") if isinstance(value, dict) else None
    good_shape = isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)
    if not isinstance(dtype, str) or not good_shape:
        raise CheckpointError(f"{path} is not a valid safetensors file (tensor {short(name)} is described wrongly)")
    return TensorEntry(dtype, tuple(shape))


def short(value: Any, limit: int = 60) -> str:
    """A value from a file, quoted and cut short for a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
