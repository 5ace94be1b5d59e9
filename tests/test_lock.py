"""Two commands, one checkpoint: a second writer is refused, a dead run's lock blocks no one,
and SIGTERM leaves nothing half-written.

The first writer is a real `bnnames` child paused mid-run (tests/signal_driver.py, "pause"):
it holds the lock while the second writer, a real command run in-process, tries the same
file; then it is let go, and its checkpoint must equal an uncontested run bit for bit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bnnames.errors import CheckpointBusy
from bnnames.storage.lock import checkpoint_lock
from tests.helpers import TINY, cli, fail_with, read_only_folder, same_run_on_disk, subprocess_env

DRIVER = Path(__file__).with_name("signal_driver.py")


@pytest.fixture
def names(tmp_path) -> Path:
    path = tmp_path / "names.txt"
    path.write_text("\n".join(["anna", "bob", "carl", "dora", "emil", "fay", "gus", "hana", "ivo", "jo"] * 6))
    return path


@pytest.fixture
def start():
    """start(WHEN, WHAT, *ARGS): `bnnames ARGS` in a child through the signal driver; paused
    children are waited for at "paused"; any child still running at the end is killed."""
    children: list[subprocess.Popen] = []

    def start(when: object, what: str, *args: object) -> subprocess.Popen:
        command = [sys.executable, str(DRIVER), str(when), what, *(str(a) for a in args)]
        pipe = subprocess.PIPE
        child = subprocess.Popen(command, env=subprocess_env(), stdin=pipe, stdout=pipe, stderr=pipe, text=True)
        children.append(child)
        if what == "pause":
            assert child.stdout.readline() == "paused\n", child.communicate(timeout=60)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=60)


def busy(checkpoint: Path, pid: int) -> tuple[str, ...]:
    return (f"{checkpoint} is being written by another bnnames run (pid {pid}); wait for it or pick another -c",)


def let_go(child: subprocess.Popen) -> str:
    """Close the paused child's stdin, so it runs on to the end; its stderr."""
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0 and "Traceback" not in err, err
    return err


def test_a_second_train_is_refused_and_the_first_run_keeps_the_file(names, tmp_path, start):
    runs = tmp_path / "runs"
    runs.mkdir()
    same, link = runs / "same.safetensors", tmp_path / "link.safetensors"
    link.symlink_to(same)  # the same file under another name
    first = start(50, "pause", "train", names, *TINY, "-c", same)  # paused before its first save
    assert not same.exists()  # the second run sees no file: only the lock stops it
    other = tmp_path / "other.txt"
    other.write_text("\n".join(["zed", "yul", "xia"] * 10))
    fail_with("train", other, *TINY, "-c", same, fragments=busy(same, first.pid))
    fail_with("train", other, *TINY, "-c", link, "--overwrite", fragments=busy(link, first.pid))
    assert os.listdir(runs) == [".same.safetensors.lock"]  # the lock lies beside the target, nothing else
    let_go(first)
    cli("train", names, *TINY, "-c", tmp_path / "reference.safetensors")
    same_run_on_disk(same, tmp_path / "reference.safetensors")
    assert os.listdir(runs) == ["same.safetensors"]  # the lock file goes with the run


def test_calibrate_and_a_second_resume_are_refused_while_a_resume_writes(names, tmp_path, start):
    path, reference = tmp_path / "c.safetensors", tmp_path / "reference.safetensors"
    cli("train", names, *TINY, "-c", path)
    shutil.copyfile(path, reference)
    first = start(250, "pause", "train", "--resume", "-c", path, "--steps", "400")
    before = path.read_bytes()
    fail_with("calibrate", "-c", path, fragments=busy(path, first.pid))
    fail_with("train", "--resume", "-c", path, "--steps", "300", fragments=busy(path, first.pid))
    cli("eval", "-c", path)  # readers never take the lock
    assert path.read_bytes() == before
    let_go(first)
    cli("train", "--resume", "-c", reference, "--steps", "400")
    same_run_on_disk(path, reference)


def test_the_lock_of_a_killed_run_is_taken_over_with_a_note(names, tmp_path, start):
    path, lock = tmp_path / "c.safetensors", tmp_path / ".c.safetensors.lock"
    first = start(50, "pause", "train", names, *TINY, "-c", path)
    first.send_signal(signal.SIGKILL)  # kill -9: no handler runs, the lock file stays
    first.wait(timeout=60)
    assert f'"pid": {first.pid}' in lock.read_text()
    result = cli("train", names, *TINY, "-c", path)
    assert f"took over the lock of {path} left by a bnnames run that ended without releasing it" in result.stderr
    assert f"(pid {first.pid})" in result.stderr
    cli("train", names, *TINY, "-c", tmp_path / "reference.safetensors")
    same_run_on_disk(path, tmp_path / "reference.safetensors")
    assert not lock.exists()


def test_a_lock_that_cannot_be_written_is_one_line_and_touches_nothing(names, tmp_path):
    path = tmp_path / "c.safetensors"
    cli("train", names, *TINY, "-c", path)
    before = path.read_bytes()
    (tmp_path / ".c.safetensors.lock").mkdir()  # the lock's name is taken by a folder
    message = f"cannot create the lock file {tmp_path / '.c.safetensors.lock'} (Is a directory): choose another -c"
    fail_with("calibrate", "-c", path, fragments=(message,))
    fail_with("train", names, *TINY, "-c", path, "--overwrite", fragments=(message,))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [".c.safetensors.lock", "c.safetensors", "names.txt"]
    folder = read_only_folder(tmp_path)
    link = tmp_path / "link.safetensors"
    link.symlink_to(folder / "c.safetensors")  # the lock goes beside the target: that folder decides
    fail_with("train", names, *TINY, "-c", link, fragments=(f"cannot write the checkpoint into {folder}",))


def test_sigterm_during_calibrate_exits_143_with_the_old_file_and_no_temporary_file(names, tmp_path, start):
    path = tmp_path / "c.safetensors"
    cli("train", names, *TINY, "-c", path)
    before = path.read_bytes()
    child = start("write", "TERM", "calibrate", "-c", path)  # halfway through writing the new file
    _, err = child.communicate(timeout=120)
    assert child.returncode == 143 and err.strip().splitlines() == ["error: interrupted"], err
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["c.safetensors", "names.txt"]  # no .tmp, no lock file


def test_sigterm_during_sample_exits_143_with_one_line(names, tmp_path, start):
    path = tmp_path / "c.safetensors"
    cli("train", names, *TINY, "-c", path)
    child = start("read", "TERM", "sample", "-c", path)
    out, err = child.communicate(timeout=120)
    assert (child.returncode, out, err.strip().splitlines()) == (143, "", ["error: interrupted"]), err


def test_one_holder_at_a_time_while_holders_come_and_go(tmp_path):
    """Four threads take and release the lock a thousand times each (flock treats each open of
    the file as its own owner, as if they were processes). A holder removes the lock file on
    release, so a thread may lock a file that is already gone; it must notice and retry, or two
    threads would hold "the" lock at once (without that check this test sees overlaps every time)."""
    path, inside, overlaps, held = tmp_path / "c.safetensors", [0], [0], [0]

    def contend() -> None:
        for _ in range(1000):
            try:
                with checkpoint_lock(path, note=lambda message: None):
                    inside[0] += 1
                    overlaps[0] += inside[0] > 1
                    held[0] += 1
                    time.sleep(0)  # let the others try now
                    inside[0] -= 1
            except CheckpointBusy:
                pass

    threads = [threading.Thread(target=contend) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps[0] == 0 and held[0] > 0
    assert os.listdir(tmp_path) == []
