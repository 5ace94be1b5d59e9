"""Atomic file writes: a crash at any moment leaves either the old file or the new one."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from bnnames.errors import ConfigError


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Yield a temporary file beside `path`; on success flush, fsync and rename it into place.

    The temporary file lives in the same folder so the final rename is atomic; if anything
    raises, it is removed and `path` is untouched. A symlink is written through (the link
    stays, its target is replaced). The new file gets the mode of the file it replaces, or
    for a new file the mode a plain `open()` would give (0666 less the umask), never
    mkstemp's 0600.
    """
    path = Path(os.path.realpath(path))
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt and SIGTERM (bnnames.cli.signals) included: no litter
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as handle:
        handle.write(data)


def check_writable_folder(path: Path, what: str, flag: str) -> None:
    """Fail early, before any work, when `path` could not be written atomically.

    The folder is probed by creating (and at once deleting) a temporary file in it:
    `os.access` says yes to root even on a read-only file system.
    """
    if os.path.isdir(path):  # os.path never raises (a too-long name is simply "no")
        raise ConfigError(f"{path} is a folder, not a {what} file: pass {flag} with a file name")
    folder = Path(os.path.realpath(path)).parent
    if not os.path.isdir(folder):
        raise ConfigError(
            f"cannot write the {what} {path}: folder {folder} does not exist; create it or choose another {flag}"
        )
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ConfigError(
            f"cannot write the {what} into {folder} ({err.strerror or err}): choose another {flag}"
        ) from None


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_current_umask()


def _current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0)  # elsewhere the only portable way to read it is to set it
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
