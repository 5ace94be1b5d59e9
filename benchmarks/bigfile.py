"""Write a big "First Last" names file for the big-file measurements (docs/big-files.md), and
measure `bnnames train --steps 2000` and `bnnames eval --split val` on it as whole processes:

    python -m benchmarks.bigfile /tmp/names-5m.txt --lines 5000000
    python -m benchmarks.bigfile /tmp/names-5m.txt --measure /work/main/.venv/bin/bnnames .venv/bin/bnnames

Each line is two names of the standard file, capitalised ("Emma Olivia"), drawn with a seeded
numpy generator, so the same arguments always write the same file. Write it under /tmp: a
generated file never belongs in the repository.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.process import _timed

CHUNK = 1_000_000  # lines built and written at a time: bounds the generator's own memory


def write_names(source: Path, out: Path, lines: int, seed: int) -> int:
    """Write `lines` lines to `out`; return the file's size in bytes."""
    words = np.array([w.capitalize() for w in source.read_text(encoding="utf-8").split()], dtype=object)
    rng = np.random.default_rng(seed)
    with out.open("w", encoding="utf-8") as handle:
        for done in range(0, lines, CHUNK):
            n = min(CHUNK, lines - done)
            first, last = words[rng.integers(0, len(words), n)], words[rng.integers(0, len(words), n)]
            handle.write("".join(f"{a} {b}\n" for a, b in zip(first, last)))
    return out.stat().st_size


def measure(data: Path, programs: list[str], runs: int) -> None:
    """Print the median wall time and peak memory of train and eval for each `bnnames` program.

    Installed programs, not `python -m bnnames`, which would import the bnnames of the current
    folder. They take turns, run by run, so a change in the machine's load hits them alike.
    """
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bnnames-bigfile-") as workdir:
        for _ in range(runs):
            for program in programs:
                ckpt = str(Path(workdir) / "big.safetensors")
                train = [program, "train", str(data), "--steps", "2000", "-c", ckpt, "--overwrite"]
                for verb, cmd in (("train", train), ("eval", [program, "eval", "-c", ckpt, "--json"])):
                    wall, peak, out = _timed(cmd, dict(os.environ))
                    figures.setdefault((program, verb), []).append((wall, peak))
                    print(
                        f"{program} {verb}: {wall:.1f} s, {peak:.0f} MB; {out.strip().splitlines()[-1][:120]}",
                        flush=True,
                    )
    print(f"load average after: {os.getloadavg()}")
    for (program, verb), values in figures.items():
        walls, peaks = [w for w, _ in values], [p for _, p in values]
        print(
            f"| {program} | {verb} | {statistics.median(walls):.1f} s ({min(walls):.1f}-{max(walls):.1f}) "
            f"| {statistics.median(peaks):.0f} MB ({min(peaks):.0f}-{max(peaks):.0f}) |"
        )


def measure_load(data: Path, runs: int) -> None:
    """Time `load_dataset` in this process (reading, checks, vocabulary, stream, split), and the
    peak memory it adds per byte of the file: what LOAD_BYTES_PER_BYTE in bnnames.data covers."""
    import resource
    import time

    from bnnames.data import load_dataset

    size = data.stat().st_size
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        dataset = load_dataset(data, 42, 3)
        walls.append(time.perf_counter() - start)
        del dataset
    added = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    print(
        f"load_dataset({data}, {size / 2**20:.1f} MiB): median {statistics.median(walls):.1f} s "
        f"({min(walls):.1f}-{max(walls):.1f}, {runs} runs); peak memory +{added / 2**20:.0f} MiB = "
        f"{added / size:.1f} bytes per file byte; load average {os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bigfile", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the file to write (under /tmp)")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--source", type=Path, default=Path("/work/shared/data/names.txt"), help="the names to draw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--measure", nargs="+", metavar="BNNAMES", help="measure the existing file with these programs")
    parser.add_argument("--load", action="store_true", help="time load_dataset on the existing file, in-process")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement")
    args = parser.parse_args()
    if args.load:
        measure_load(args.out, args.runs)
        return
    if args.measure:
        measure(args.out, args.measure, args.runs)
        return
    size = write_names(args.source, args.out, args.lines, args.seed)
    print(f"{args.out}: {args.lines:,} lines, {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
