"""One writer per checkpoint: the lock a run holds from its start until its last write.

The lock is `fcntl.flock` on `.NAME.lock` beside the checkpoint (beside the target of a
symlink, so two names of one file conflict). The kernel drops a flock when its process dies,
however it dies, so a dead run never blocks anyone: a lock *file* left behind (kill -9, power
loss) is inert, and the next writer takes it over with a note naming the run that left it.
Readers (eval, sample, diagnose) never lock: atomic renames give them the old file or the new.
The file holds the holder's pid and host, only to name it in the messages.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from bnnames.errors import CheckpointBusy, ConfigError
from bnnames.storage.files import check_writable_folder


@contextlib.contextmanager
def checkpoint_lock(path: Path, note: Callable[[str], None]) -> Iterator[None]:
    """Hold the checkpoint `path` for writing, or refuse at once (CheckpointBusy) if a run holds it."""
    check_writable_folder(path, "checkpoint", "-c")
    target = Path(os.path.realpath(path))
    lock_path = target.with_name(f".{target.name}.lock")
    fd = _acquire(lock_path, path)
    try:
        left = _holder(fd)
        if left:
            note(f"took over the lock of {path} left by a bnnames run that ended without releasing it ({left})")
        with contextlib.suppress(OSError):  # only names the holder: a full disk fails at the save, clearly
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode() + b"\n", 0)
        yield
    finally:
        lock_path.unlink(missing_ok=True)  # before the unlock: see _acquire
        os.close(fd)


def _acquire(lock_path: Path, path: Path) -> int:
    """Open and flock the lock file; the fd of a locked file that is still the one at `lock_path`.

    A holder removes the file while it still holds the lock, so a flock that succeeds on a file
    no longer at `lock_path` came too late: open the new one and try again.
    """
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise ConfigError(f"cannot create the lock file {lock_path} ({err.strerror}): choose another -c") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _holder(fd)
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ConfigError(f"cannot lock {lock_path} ({err.strerror}): choose another -c") from None
            raise CheckpointBusy(
                f"{path} is being written by another bnnames run{f' ({holder})' if holder else ''}; "
                "wait for it or pick another -c"
            ) from None
        if _is_at(fd, lock_path):
            return fd
        os.close(fd)


def _is_at(fd: int, lock_path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(lock_path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _holder(fd: int) -> str:
    """'pid 123' (and 'on host h' when not this one), or '' for a lock file not yet (or badly) written."""
    try:
        written = json.loads(os.pread(fd, 4096, 0))
        pid, host = int(written["pid"]), str(written["host"])
    except (OSError, ValueError, TypeError, KeyError):
        return ""
    return f"pid {pid}" if host == socket.gethostname() else f"pid {pid} on host {host}"
