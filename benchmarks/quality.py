"""Quality benchmark: every preset with and without BatchNorm, trained for real (not a test).

    python -m benchmarks.quality /path/to/names.txt [--presets default deep wavenet] [--steps N]

Each run is a separate `bnnames train` process (what a user runs), timed by wall clock; the
final train/val losses (running BatchNorm statistics) and the parameter count are read back from
the checkpoint. Prints a Markdown table and writes it, with the raw numbers, as JSON.
Full runs take minutes each on a laptop CPU; `--steps` shortens them (the table says so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bnnames.storage.checkpoint import load_checkpoint

PRESETS = ("default", "deep", "wavenet")
NORMS = ("batch", "layer", "none")


def run_one(data: Path, preset: str, norm: str, steps: int | None, folder: Path) -> dict:
    checkpoint = folder / f"{preset}-{norm}.safetensors"
    command = [
        sys.executable,
        "-m",
        "bnnames",
        "train",
        str(data),
        "--preset",
        preset,
        "--norm",
        norm,
        "-c",
        str(checkpoint),
        "--overwrite",
    ]
    if steps is not None:
        command += ["--steps", str(steps)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    ckpt = load_checkpoint(checkpoint)
    return {
        "preset": preset,
        "norm": norm,
        "engine": ckpt.train_config.engine,
        "steps": ckpt.step,
        "parameters": sum(p.numel() for p in ckpt.model.parameters()),
        "train": ckpt.losses["train"],
        "val": ckpt.losses["val"],
        "wall_s": wall,
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "| preset | norm | training loop | steps | parameters | train loss | val loss | wall time |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['norm']} | {r['engine']} | {r['steps']:,} | {r['parameters']:,} | "
            f"{r['train']:.4f} | {r['val']:.4f} | {r['wall_s']:.0f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="names file (the standard 32,033-name dataset)")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--norms", nargs="+", default=list(NORMS), choices=NORMS)
    parser.add_argument("--steps", type=int, default=None, help="shorten every run (default: each preset's)")
    parser.add_argument("--json", type=Path, default=Path("quality.json"), help="where to write the results")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for preset in args.presets:
            for norm in args.norms:
                rows.append(run_one(args.data, preset, norm, args.steps, Path(folder)))
                print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    environment = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    args.json.write_text(json.dumps({"environment": environment, "runs": rows}, indent=2) + "\n")
    print()
    print(markdown(rows))


if __name__ == "__main__":
    main()
