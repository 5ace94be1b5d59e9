"""A names "file" that is a FIFO never makes a command deaf to Ctrl-C or kill.

A plain open() of a FIFO waits, inside C, for a writer; `train` records its first signal to save
at the next step, so with no writer it waited on (tried: the first SIGTERM went unheard).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import BNNAMES, TINY, cli, subprocess_env

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")


def _fifo(tmp_path: Path) -> Path:
    fifo = tmp_path / "names.fifo"
    os.mkfifo(fifo)
    return fifo


def test_train_on_a_fifo_without_a_writer_says_so_at_once(tmp_path: Path) -> None:
    run = subprocess.run(
        [*BNNAMES, "train", _fifo(tmp_path), "-c", tmp_path / "m.safetensors"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,  # the old open() waited here for ever
    )
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip().splitlines() == [
        f"error: names file {tmp_path / 'names.fifo'} is a pipe with nothing to read (no program writes to it): "
        "start the program that writes it first, or pass a regular file"
    ]


def _has_open(pid: int, path: Path) -> bool:
    try:
        return any(os.path.realpath(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # not started yet, or gone
        return False


def _start(*args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [*BNNAMES, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env()
    )


def _wait_until_open(child: subprocess.Popen, fifo: Path) -> None:
    deadline = time.monotonic() + 60
    while not _has_open(child.pid, fifo) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _has_open(child.pid, fifo), child.communicate(timeout=5)


linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches /proc for the open FIFO")


@linux
def test_a_fifo_whose_writer_is_there_first_is_read(tmp_path: Path, small_names: Path) -> None:
    fifo = _fifo(tmp_path)
    writer = os.open(fifo, os.O_RDWR)  # Linux: a writer that need not wait for a reader
    os.write(writer, small_names.read_bytes())  # into the pipe's buffer, kept while one end is open
    child = _start("train", fifo, "-c", tmp_path / "m.safetensors", *TINY)
    _wait_until_open(child, fifo)
    os.close(writer)  # the end of the names
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0 and "trained 200 steps" in out, err


@linux
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_read_waiting_on_a_silent_writer_ends_at_the_first_signal(tmp_path: Path, small_names: Path, signum) -> None:
    checkpoint = tmp_path / "m.safetensors"
    cli("train", small_names, "-c", checkpoint, *TINY)
    fifo = _fifo(tmp_path)
    writer = os.open(fifo, os.O_RDWR)  # a writer that writes nothing: the read waits
    try:
        child = _start("eval", "-c", checkpoint, "--data", fifo)
        _wait_until_open(child, fifo)
        child.send_signal(signum)
        _, err = child.communicate(timeout=30)
    finally:
        os.close(writer)
    assert child.returncode == 128 + signum, err
    assert err.strip().splitlines()[-1] == "error: interrupted"
