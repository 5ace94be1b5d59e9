"""Write a big "First Last" names file for the big-file measurements (docs/big-files.md).

    python -m benchmarks.bigfile /tmp/names-5m.txt --lines 5000000

Each line is two names of the standard file, capitalised ("Emma Olivia"), drawn with a seeded
numpy generator, so the same arguments always write the same file. Write it under /tmp: a
generated file never belongs in the repository.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bigfile", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the file to write (under /tmp)")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--source", type=Path, default=Path("/work/shared/data/names.txt"), help="the names to draw")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    size = write_names(args.source, args.out, args.lines, args.seed)
    print(f"{args.out}: {args.lines:,} lines, {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
