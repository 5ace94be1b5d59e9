"""Where compiled training steps are kept between runs: a private folder of the user's, not /tmp.

A reboot (or a cleaned /tmp) must not make the next run compile again, for many seconds, so
the compiled steps (`compiled.py`, in `compiled/steps/`, see `packages.py`) and torch's own files
of a compile (pointed there for the compile only) live in a folder that lasts:

- $BNNAMES_CACHE_DIR when set (to move it, e.g. to a larger disk);
- else the platform's cache folder: $XDG_CACHE_HOME/bnnames or ~/.cache/bnnames on Linux,
  ~/Library/Caches/bnnames on macOS, %LOCALAPPDATA%\\bnnames\\Cache on Windows.

The cache holds native code that a run loads and executes, so it is trusted like ssh's key files:
folders bnnames creates are private (0700), and a folder on the way from the cache root to an
entry that another user owns, or that the group or others may write, is never loaded from (one
note, and the step is compiled into a fresh private temporary folder). docs/reliability.md says
what this protects against and what it cannot.

A cache folder that cannot be used (not creatable, not writable, full) never stops training
either: the caller hears one note and the step is compiled into a temporary folder.

Before it compiles, torch checks which vector instructions (AVX2, AVX-512) its C++ compiler
can build for, by building and loading probe libraries in child processes (about a second of
CPU). bnnames tells torch to trust the CPU's own flags instead, unless TORCHINDUCTOR_VEC_ISA_OK
is set; a compiler that cannot build for them makes the compile fail, and training goes on eagerly.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path

CACHE_ENV = "BNNAMES_CACHE_DIR"
TORCH_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"  # the one setting torch reads its compile cache folder from
MIN_FREE_BYTES = 64 << 20  # a compiled step takes a few MB; below this the disk counts as full
VEC_ISA_ENV = "TORCHINDUCTOR_VEC_ISA_OK"  # the user's own answer to torch's probe, when set
PRIVATE_FOLDER = 0o700  # the mode of every folder bnnames creates in its cache
PRIVATE_FILE = 0o600  # the mode of every file bnnames writes there


def cache_root(env: Mapping[str, str], platform: str = sys.platform, home: Path | None = None) -> Path:
    """bnnames' cache folder for this environment and platform (see the module docstring)."""
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    home = home or Path.home()
    if platform == "win32":
        return Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local") / "bnnames" / "Cache"
    if platform == "darwin":
        return home / "Library" / "Caches" / "bnnames"
    return Path(env.get("XDG_CACHE_HOME") or home / ".cache") / "bnnames"


def compile_cache_folder(env: Mapping[str, str]) -> Path:
    return cache_root(env) / "compiled"


def make_private(folder: Path, root: Path) -> None:
    """Create `folder` (under `root`, root included) with every missing level private (0700);
    the folders above `root` are the user's own and made as `mkdir -p` would."""
    for level in [root, *(root / part for part in _below(folder, root))]:
        if level.exists() and not level.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(level))
        level.mkdir(mode=PRIVATE_FOLDER, parents=level == root, exist_ok=True)


def _below(path: Path, root: Path) -> list[str]:
    parts = path.relative_to(root).parts
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def untrusted_because(path: Path, root: Path) -> tuple[Path, str] | None:
    """(what, why) when `path` or a folder between `root` and it could hold someone else's code:
    not owned by this user, writable by the group or others, or (below the root) a symbolic link.
    None when every one of them is this user's alone (or missing, past the last that exists)."""
    if not hasattr(os, "getuid"):  # Windows: the folder's ACL is the user profile's (not checked)
        return None
    for level in [root, *(root / part for part in _below(path, root))]:
        try:
            info = os.stat(level) if level == root else os.lstat(level)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(info.st_mode):
            return level, "is a symbolic link"
        if info.st_uid != os.getuid():
            return level, f"is owned by user {info.st_uid}, not by you ({os.getuid()})"
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            who = "anyone" if info.st_mode & stat.S_IWOTH else "its group"
            return level, f"can be written by {who} (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def untrusted_note(found: tuple[Path, str]) -> str:
    """The one note for an untrusted cache: what was found, what bnnames does, how to fix it."""
    path, why = found
    mode = PRIVATE_FOLDER if path.is_dir() else PRIVATE_FILE
    return (
        f"not loading compiled steps from the cache: {path} {why}; compiling into a private temporary "
        f"folder instead (to fix: chmod {mode:o} {path}, or bnnames cache --clear)"
    )


def unusable_because(folder: Path, root: Path | None = None) -> str | None:
    """Why `folder` cannot hold the compile cache (created, private, if missing), or None when it can."""
    try:
        make_private(folder, root or folder)
        with tempfile.TemporaryFile(dir=folder):  # writable: a probe file, removed on close
            pass
        free = shutil.disk_usage(folder).free
    except OSError as err:
        return err.strerror or type(err).__name__
    if free < MIN_FREE_BYTES:
        return f"the disk is full ({free >> 20} MB free)"
    return None


def trusted_folder(folder: Path, root: Path, note: Callable[[str], None]) -> Path | None:
    """`folder` when it can hold and serve compiled steps; else None, said once in a note."""
    reason = unusable_because(folder, root)
    if reason is not None:
        note(f"the compile cache {folder} cannot be used ({reason}): compiling without it (set {CACHE_ENV} to move it)")
        return None
    found = untrusted_because(folder, root)
    if found is not None:
        note(untrusted_note(found))
        return None
    return folder


@contextmanager
def compile_cache(folder: Path | None) -> Iterator[Path]:
    """Compile within this block into `folder` (yielded), or into a fresh private temporary folder
    when None (yielded, removed after the block: load what is compiled there within it).

    torch reads the folder from an environment variable whenever it compiles; it is set only
    for this block and restored after, so a library caller's own setting is left alone.
    """
    import torch._inductor.config as inductor_config  # here: only a compiling run pays this import

    scratch = tempfile.TemporaryDirectory(prefix="bnnames-compile-") if folder is None else nullcontext(str(folder))
    before = os.environ.get(TORCH_CACHE_ENV)
    trust_cpu = nullcontext() if VEC_ISA_ENV in os.environ else inductor_config.patch({"cpp.vec_isa_ok": True})
    with scratch as where:
        os.environ[TORCH_CACHE_ENV] = str(where)
        try:
            with trust_cpu:
                yield Path(where)
        finally:
            if before is None:
                os.environ.pop(TORCH_CACHE_ENV, None)
            else:
                os.environ[TORCH_CACHE_ENV] = before
