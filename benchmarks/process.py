"""(2) The default `bnnames train` as a whole process, cold and warm; (5) start-up; (6) peak memory."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.measure import Figure

LOSSES = re.compile(r"train loss (\d+\.\d+)\s+val loss (\d+\.\d+)")


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak resident memory (MB) and stdout of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    out = child.stdout.read() if child.stdout else ""  # a few lines: the pipe never fills
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {child.returncode}")
    return wall, usage.ru_maxrss / 1024, out  # ru_maxrss is in KiB on Linux


def train_figures(data: Path, workdir: Path, runs: int, steps: int | None) -> tuple[list[Figure], Path, list[str]]:
    """Cold runs each with an empty compile cache, then warm runs sharing the last one's cache."""
    ckpt = workdir / "bench.safetensors"
    cmd = [sys.executable, "-m", "bnnames", "train", str(data), "-c", str(ckpt), "--overwrite"]
    cmd += ["--steps", str(steps)] if steps else []
    walls: dict[str, list[float]] = {"cold": [], "warm": []}
    peaks: list[float] = []
    losses: list[str] = []
    for kind in ("cold", "warm"):
        for _ in range(runs):
            if kind == "cold":
                cache = tempfile.mkdtemp(prefix="inductor-", dir=workdir)
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
            wall, peak, out = _timed(cmd, env)
            walls[kind].append(wall)
            peaks.append(peak)
            found = LOSSES.search(out)
            losses.append(f"train {found[1]} / val {found[2]}" if found else "no losses printed")
    run = f"{steps or 200_000:,}-step default run"
    figures = [
        Figure.of(f"`bnnames train`, {run}, cold (empty compile cache)", "s", walls["cold"]),
        Figure.of(f"`bnnames train`, {run}, warm", "s", walls["warm"]),
        Figure.of("peak memory of a training process (max RSS)", "MB", peaks),
    ]
    return figures, ckpt, losses


def startup_figures(runs: int) -> list[Figure]:
    help_s = [_timed([sys.executable, "-m", "bnnames", "--help"], dict(os.environ))[0] for _ in range(runs)]
    torch_s = [_timed([sys.executable, "-c", "import torch"], dict(os.environ))[0] for _ in range(3)]
    return [
        Figure.of(
            "`bnnames --help` wall time",
            "s",
            help_s,
            baseline="python -c 'import torch'",
            baseline_median=statistics.median(torch_s),
        )
    ]
