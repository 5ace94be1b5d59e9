"""The compiled steps on disk: each package verified before it is loaded, the cache kept bounded.

A package (`KEY.pt2`, a zip holding a shared library) is native code that the AOTI loader
dlopens, so nothing of it may run unless this user's bnnames wrote it. Beside each package its
record (`KEY.json`) holds the package's SHA-256, written at compile time; before a load the
package is read once through one file descriptor, hashed, and only when the hash matches the
record are those same bytes written to a file bnnames creates (O_EXCL) in a fresh private folder
(mkdtemp, 0700), which is what the loader opens. The loader never sees the cache's file, so
nothing can swap it between the check and the load. A package without a record, or whose bytes
do not match it, is removed, and the step compiled again.

The cache is bounded: after each compile, the entries of the compile cache folder (packages, and
torch's own files of past compiles) are removed least recently used first until the folder holds
at most LIMIT_BYTES. A load touches its package, so the steps in use stay.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bnnames.errors import ConfigError
from bnnames.training.fast.cache import PRIVATE_FILE, cache_root, compile_cache_folder, untrusted_because

LIMIT_BYTES = 64_000_000  # about 50 compiled steps of the default model (docs/commands.md, `bnnames cache`)
KEEP = ("steps", "locks")  # the subfolders that are not one entry each: packages, torch's lock files


@dataclass(frozen=True)
class Entry:
    """One thing in the compile cache: a compiled step (`key` set) or torch's files of a compile."""

    path: Path
    size: int
    last_used: float  # seconds since the epoch (the file's modification time, touched on each load)
    key: str | None = None
    about: str = ""


def record_path(package: Path) -> Path:
    return package.with_suffix(".json")


def write_package(source: Path, package: Path, about: str) -> None:
    """Move the freshly compiled `source` into place as `package`, with its record beside it.

    The record is written first: a package without one is never loaded, one with a record of
    other bytes neither, so a crash between the two renames costs a recompile, never a wrong load.
    """
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    record = json.dumps({"sha256": digest, "size": source.stat().st_size, "about": about}).encode()
    fd, tmp = tempfile.mkstemp(dir=package.parent, prefix=".record-")  # mkstemp: 0600, O_EXCL
    with os.fdopen(fd, "wb") as handle:
        handle.write(record)
    os.replace(tmp, record_path(package))
    os.chmod(source, PRIVATE_FILE)
    os.replace(source, package)


@contextlib.contextmanager
def verified_copy(package: Path, note: Callable[[str], None]) -> Iterator[Path | None]:
    """A private copy of `package`'s bytes once they match its record (yielded, removed after the
    block: load it within), or None: missing (silently), or not matching (removed, with a note)."""
    try:
        data = _read_regular(package)
        record = json.loads(_read_regular(record_path(package)))
        expected = record["sha256"]
    except FileNotFoundError:
        data, expected = (b"", None) if package.exists() else (None, None)
    except (OSError, ValueError, KeyError, TypeError):
        data, expected = b"", None
    if data is None:
        yield None
        return
    if expected is None or hashlib.sha256(data).hexdigest() != expected:
        why = "has no valid record of its digest" if expected is None else "does not match its recorded digest"
        note(f"the compiled step {package.name} in the cache {why}: removed, compiling it again")
        remove_entry(package)
        yield None
        return
    os.utime(package)  # last used: what the bound keeps
    with tempfile.TemporaryDirectory(prefix="bnnames-step-") as private:  # mkdtemp: 0700, this user's
        copy = Path(private) / "step.pt2"
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), PRIVATE_FILE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        yield copy


def _read_regular(path: Path) -> bytes:
    """The bytes of `path`, read through one descriptor that is checked to be this user's
    regular file, never through a link and never writable by others."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise OSError(f"{path} is not a private regular file")
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise OSError(f"{path} is not yours")
        return handle.read()


def remove_entry(path: Path) -> None:
    """Remove one entry: a package and its record, or a folder of torch's files."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
        return
    for each in (path, record_path(path)) if path.suffix == ".pt2" else (path,):
        with contextlib.suppress(FileNotFoundError):
            each.unlink()


def entries(folder: Path) -> list[Entry]:
    """What the compile cache `folder` holds, least recently used first."""
    found: list[Entry] = []
    steps = folder / "steps"
    for package in sorted(steps.glob("*.pt2")) if steps.is_dir() else []:
        info = package.lstat()
        about = _about(record_path(package))
        found.append(Entry(package, info.st_size + _size(record_path(package)), info.st_mtime, package.stem, about))
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name not in KEEP:
            found.append(Entry(path, _size(path), path.lstat().st_mtime))
    return sorted(found, key=lambda entry: entry.last_used)


def _about(record: Path) -> str:
    try:
        return str(json.loads(record.read_bytes()).get("about", ""))
    except (OSError, ValueError, AttributeError):
        return "(no record: will be recompiled)"


def _size(path: Path) -> int:
    if path.is_symlink() or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def prune(folder: Path, keep: Path, limit: int = LIMIT_BYTES) -> list[Entry]:
    """Remove entries least recently used first until `folder` holds at most `limit` bytes (the
    package `keep`, just compiled or loaded, stays); returns what was removed."""
    found = entries(folder)
    total = sum(entry.size for entry in found)
    removed: list[Entry] = []
    for entry in found:
        if total <= limit:
            break
        if entry.path != keep:
            remove_entry(entry.path)
            total -= entry.size
            removed.append(entry)
    return removed


@dataclass(frozen=True)
class CacheView:
    """The compile cache as `bnnames cache` shows it."""

    folder: Path
    entries: list[Entry]  # least recently used first
    limit: int
    untrusted: tuple[Path, str] | None  # what makes the cache unloadable, if anything

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.entries)


def view(env: Mapping[str, str]) -> CacheView:
    """The compile cache of this environment (`cache.compile_cache_folder`), read, never created."""
    folder = compile_cache_folder(env)
    found = untrusted_because(folder / "steps", cache_root(env)) if folder.is_dir() else None
    return CacheView(folder, entries(folder), LIMIT_BYTES, found)


def clear(env: Mapping[str, str]) -> CacheView:
    """Empty the compile cache: its folder goes, with only what bnnames and torch's compiles wrote
    there (the cache root may be a folder of the user's); returns what it held."""
    held = view(env)
    try:
        if held.folder.is_symlink():
            held.folder.unlink()
        elif held.folder.is_dir():
            shutil.rmtree(held.folder)
    except OSError as err:
        raise ConfigError(f"cannot clear the compile cache {held.folder}: {err.strerror or err}") from None
    return held


def age(entry: Entry, now: float | None = None) -> str:
    """'3 min ago'-style wording for `entry.last_used`."""
    seconds = max(0.0, (time.time() if now is None else now) - entry.last_used)
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if unit == 'day' and count > 1 else ''} ago"
    return "just now"
