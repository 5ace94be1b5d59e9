"""Where compiled training steps are kept between runs: the user's cache folder, not /tmp.

A reboot (or a cleaned /tmp) must not make the next run compile again, for many seconds, so
the compiled steps (`compiled.py`, in `compiled/steps/`) and torch's own files of a compile
(pointed there for the compile only) live in a folder that lasts:

- $BNNAMES_CACHE_DIR when set (to move it, e.g. to a shared or a larger disk);
- else the platform's cache folder: $XDG_CACHE_HOME/bnnames or ~/.cache/bnnames on Linux,
  ~/Library/Caches/bnnames on macOS, %LOCALAPPDATA%\\bnnames\\Cache on Windows.

A cache folder that cannot be used (not creatable, not writable, full) never stops training:
the caller hears one note and the step is compiled into a temporary folder.

Before it compiles, torch checks which vector instructions (AVX2, AVX-512) its C++ compiler
can build for, by building and loading probe libraries in child processes (about a second of
CPU). bnnames tells torch to trust the CPU's own flags instead, unless TORCHINDUCTOR_VEC_ISA_OK
is set; a compiler that cannot build for them makes the compile fail, and training goes on eagerly.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path

CACHE_ENV = "BNNAMES_CACHE_DIR"
TORCH_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"  # the one setting torch reads its compile cache folder from
MIN_FREE_BYTES = 64 << 20  # a compiled step takes a few MB; below this the disk counts as full
VEC_ISA_ENV = "TORCHINDUCTOR_VEC_ISA_OK"  # the user's own answer to torch's probe, when set


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


def unusable_because(folder: Path) -> str | None:
    """Why `folder` cannot hold the compile cache (created if missing), or None when it can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # writable: a probe file, removed on close
            pass
        free = shutil.disk_usage(folder).free
    except OSError as err:
        return err.strerror or type(err).__name__
    if free < MIN_FREE_BYTES:
        return f"the disk is full ({free >> 20} MB free)"
    return None


@contextmanager
def compile_cache(note: Callable[[str], None]) -> Iterator[Path | None]:
    """Compile within this block with the lasting cache folder (yielded), or say once why not (None).

    torch reads the folder from an environment variable whenever it compiles; it is set only
    for this block and restored after, so a library caller's own setting is left alone.
    """
    import torch._inductor.config as inductor_config  # here: only a compiling run pays this import

    folder = compile_cache_folder(os.environ)
    reason = unusable_because(folder)
    if reason is not None:
        note(f"the compile cache {folder} cannot be used ({reason}): compiling without it (set {CACHE_ENV} to move it)")
        yield None
        return
    before = os.environ.get(TORCH_CACHE_ENV)
    os.environ[TORCH_CACHE_ENV] = str(folder)
    trust_cpu = nullcontext() if VEC_ISA_ENV in os.environ else inductor_config.patch({"cpp.vec_isa_ok": True})
    try:
        with trust_cpu:
            yield folder
    finally:
        if before is None:
            os.environ.pop(TORCH_CACHE_ENV, None)
        else:
            os.environ[TORCH_CACHE_ENV] = before
