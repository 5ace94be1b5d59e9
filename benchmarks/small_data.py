"""Does `bnnames train FILE` with no options fit small names lists? (issue 8's done-when check)

    python -m benchmarks.small_data /path/to/names.txt [--lists italian greek ...] [--sizes 500 2000 5000]

For each list (benchmarks/data/*.txt, and random subsets of the standard file made here in a
temporary folder, never kept), trains once with the defaults (the plateau schedule; `eval` then
uses the best weights) and once per fixed step count S of the sweep (`--steps S --decay-at S/2`,
the fixed schedule; `eval --weights last`), each a separate `bnnames train` process timed by wall
clock. Prints a Markdown table: the default's val and test losses, steps and time beside the
sweep's best (by val) and its test loss. Both picks are made on val, so test is the fair check.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.process import _timed
from tests.helpers import subprocess_env

DATA = Path(__file__).parent / "data"
SWEEP = (1_000, 3_000, 6_000, 12_000, 24_000, 48_000)
BNNAMES = [sys.executable, "-m", "bnnames"]


def losses(checkpoint: Path, weights: str) -> dict[str, float]:
    """{"val": .., "test": ..}: the val loss picks (the best weights, the best S), test checks the pick."""
    out = subprocess.run(
        [*BNNAMES, "eval", "-c", str(checkpoint), "--weights", weights, "--split", "all", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=subprocess_env(),
    ).stdout
    return {row["split"]: row["loss"] for row in json.loads(out) if row["split"] != "train"}


def train(names: Path, checkpoint: Path, *options: str) -> tuple[float, int]:
    """(wall seconds, steps done) of one `bnnames train` process."""
    wall, _, out = _timed(
        [*BNNAMES, "train", str(names), "-c", str(checkpoint), "--overwrite", *options], subprocess_env()
    )
    return wall, int(out.split()[1].replace(",", ""))  # "trained 6,000 steps in ..."


def measure(names: Path, folder: Path) -> dict:
    row: dict = {"list": names.stem, "names": len(names.read_text(encoding="utf-8").split("\n")) - 1}
    wall, steps = train(names, folder / "default.safetensors")
    default = losses(folder / "default.safetensors", "best")
    row.update(default_val=default["val"], default_test=default["test"], default_steps=steps, default_s=wall)
    row["sweep"] = {}
    for s in SWEEP:
        wall, _ = train(names, folder / f"s{s}.safetensors", "--steps", str(s), "--decay-at", str(s // 2))
        row["sweep"][s] = {**losses(folder / f"s{s}.safetensors", "last"), "s": wall}
    best = min(row["sweep"], key=lambda s: row["sweep"][s]["val"])
    row.update(sweep_best=row["sweep"][best]["val"], sweep_best_test=row["sweep"][best]["test"], sweep_best_steps=best)
    return row


def subsets(standard: Path, sizes: list[int], folder: Path) -> list[Path]:
    """Random subsets of the standard file (seeded: the same lines every time)."""
    lines = standard.read_text(encoding="utf-8").split()
    paths = []
    for size in sizes:
        path = folder / f"standard-{size}.txt"
        path.write_text("\n".join(random.Random(size).sample(lines, size)) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("standard", type=Path, help="the standard names.txt, for the subsets")
    parser.add_argument("--lists", nargs="*", default=sorted(p.stem for p in DATA.glob("*.txt")))
    parser.add_argument("--sizes", nargs="*", type=int, default=[500, 2_000, 5_000])
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "small-data-last-run.json")
    args = parser.parse_args()
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for names in [DATA / f"{name}.txt" for name in args.lists] + subsets(args.standard, args.sizes, folder):
            rows.append(measure(names, folder))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print("| list | names | default val | default test | steps | wall s | sweep best val | its test | at S | val gap |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        gap = r["default_val"] - r["sweep_best"]
        print(
            f"| {r['list']} | {r['names']:,} | {r['default_val']:.4f} | {r['default_test']:.4f} | "
            f"{r['default_steps']:,} | {r['default_s']:.1f} | {r['sweep_best']:.4f} | {r['sweep_best_test']:.4f} | "
            f"{r['sweep_best_steps']:,} | {gap:+.4f} |"
        )
    print(f"\n(all runs: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
