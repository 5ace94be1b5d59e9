"""(2) `bnnames train` as a whole process: the default run cold, warm, warm after a reboot (a fresh
temporary folder) and on another alphabet; the wavenet preset against the reference loop;
(5) start-up; (6) peak memory. Every process's CPU seconds (user + system, its children
included) are kept beside its wall time: on a shared machine they move much less with the load."""

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
from bnnames.training.fast.cache import CACHE_ENV

LOSSES = re.compile(r"train loss (\d+\.\d+)\s+val loss (\d+\.\d+)")


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str, float]:
    """Wall seconds, peak resident memory (MB), stdout and CPU seconds of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    out = child.stdout.read() if child.stdout else ""  # a few lines: the pipe never fills
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {child.returncode}")
    cpu = usage.ru_utime + usage.ru_stime  # the compiler's processes included (reaped children)
    return wall, usage.ru_maxrss / 1024, out, cpu  # ru_maxrss is in KiB on Linux


def _train_cmd(data: Path, ckpt: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "bnnames", "train", str(data), "-c", str(ckpt), "--overwrite", *options]


def _figure(what: str, walls: list[float], cpus: list[float], **extra: object) -> Figure:
    note = f"CPU {statistics.median(cpus):.1f} s (user + system)"
    return Figure.of(what, "s", walls, note=note, **extra)  # type: ignore[arg-type]


def other_alphabet(data: Path, folder: Path) -> Path:
    """The names file with every 'e' of every third name accented: an alphabet one larger."""
    names = data.read_text(encoding="utf-8").split()
    path = folder / "accented.txt"
    path.write_text("\n".join(n.replace("e", "é") if i % 3 == 0 else n for i, n in enumerate(names)) + "\n")
    return path


def train_figures(data: Path, workdir: Path, runs: int, steps: int | None) -> tuple[list[Figure], Path, list[str]]:
    """Cold runs each with an empty compile cache, then warm runs sharing the last one's cache;
    then one warm run with a fresh temporary folder, one on a names file of another alphabet, and
    one with the reference loop (the notebook's formulation)."""
    ckpt = workdir / "bench.safetensors"
    extra = ["--steps", str(steps)] if steps else []
    walls: dict[str, list[float]] = {"cold": [], "warm": [], "reboot": [], "alphabet": [], "reference": []}
    cpus: dict[str, list[float]] = {kind: [] for kind in walls}
    peaks: list[float] = []
    losses: list[str] = []
    for kind in walls:
        for _ in range(runs if kind in ("cold", "warm") else 1):
            if kind == "cold":
                cache = tempfile.mkdtemp(prefix="cache-", dir=workdir)
            env = {**os.environ, CACHE_ENV: cache}
            names = other_alphabet(data, workdir) if kind == "alphabet" else data
            if kind == "reboot":  # torch's own caches live under the temporary folder: a new one
                env["TMPDIR"] = tempfile.mkdtemp(prefix="tmp-", dir=workdir)
            engine = ["--engine", "reference"] if kind == "reference" else []  # the notebook's loop
            wall, peak, out, cpu = _timed(_train_cmd(names, ckpt, *extra, *engine), env)
            walls[kind].append(wall)
            cpus[kind].append(cpu)
            peaks.append(peak)
            found = LOSSES.search(out)
            if kind not in ("alphabet", "reference"):  # the compiled default runs
                losses.append(f"train {found[1]} / val {found[2]}" if found else "no losses printed")
    run = f"{steps or 200_000:,}-step default run"
    warm = statistics.median(walls["warm"])
    figures = [
        _figure(f"`bnnames train`, {run}, cold (empty compile cache)", walls["cold"], cpus["cold"]),
        _figure(f"`bnnames train`, {run}, warm", walls["warm"], cpus["warm"]),
        _figure(
            f"`bnnames train`, {run}, warm cache, fresh temporary folder",
            walls["reboot"],
            cpus["reboot"],
            baseline="warm",
            baseline_median=warm,
        ),
        _figure(
            f"`bnnames train`, {run}, warm cache, a names file of another alphabet size",
            walls["alphabet"],
            cpus["alphabet"],
            baseline="warm",
            baseline_median=warm,
        ),
        _figure(
            f"`bnnames train --engine reference`, {run} (the notebook's loop)", walls["reference"], cpus["reference"]
        ),
        Figure.of(
            "speed-up of the default run, warm, over the notebook's loop, whole processes",
            "x",
            [r / statistics.median(walls["warm"]) for r in walls["reference"]],
        ),
        Figure.of("peak memory of a training process (max RSS)", "MB", peaks),
    ]
    return figures, ckpt, losses


def wavenet_process_figures(data: Path, workdir: Path, runs: int, steps: int) -> list[Figure]:
    """`--preset wavenet --steps N` with the reference loop and the compiled step, alternated, warm
    (the user's compile cache, filled first by an 8-step run if need be); then one whole 200k-step
    `--preset wavenet` run."""
    env = dict(os.environ)
    ckpt = workdir / "wavenet.safetensors"
    options = ["--preset", "wavenet", "--steps", str(steps), "--engine"]
    _timed(_train_cmd(data, ckpt, *options, "compiled", "--steps", "8"), env)  # fills the cache
    walls: dict[str, list[float]] = {"reference": [], "compiled": []}
    cpus: dict[str, list[float]] = {"reference": [], "compiled": []}
    for _ in range(runs):
        for engine in walls:
            wall, _, _, cpu = _timed(_train_cmd(data, ckpt, *options, engine), env)
            walls[engine].append(wall)
            cpus[engine].append(cpu)
    what = f"`bnnames train --preset wavenet --steps {steps:,}`"
    ratios = [r / c for r, c in zip(walls["reference"], walls["compiled"])]
    cpu_ratio = statistics.median(r / c for r, c in zip(cpus["reference"], cpus["compiled"]))
    full_wall, _, out, full_cpu = _timed(_train_cmd(data, ckpt, "--preset", "wavenet"), env)  # 200,000 steps
    found = LOSSES.search(out)
    return [
        _figure(
            "`bnnames train --preset wavenet` (200,000 steps), warm",
            [full_wall],
            [full_cpu],
            baseline="target",
            baseline_median=70.0,
        ),
        Figure.of(
            "wavenet preset, final losses",
            "nats",
            [float(found[2]) if found else float("nan")],
            note=f"train {found[1]} / val {found[2]}" if found else "no losses printed",
        ),
        _figure(f"{what}, compiled, warm", walls["compiled"], cpus["compiled"]),
        _figure(f"{what}, reference loop", walls["reference"], cpus["reference"]),
        Figure.of(
            "speed-up of the compiled wavenet over the reference, whole processes",
            "x",
            ratios,
            note=f"in CPU seconds: {cpu_ratio:.2f} x",
        ),
    ]


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
