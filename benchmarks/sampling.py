"""Names per second of `bnnames sample` with and without constraints (docs/sampling.md).

    python -m benchmarks.sampling --default D.safetensors --wavenet W.safetensors [--baseline /work/main]

In-process: `sample_names` after the checkpoint is loaded (the exact sampler's table and the
ranked search's heuristic built inside each call, as a command builds them), median of --rounds
runs. Whole process: `python -m bnnames sample ...` wall time, median of 3. With --baseline (a
checkout of main), unconstrained sampling of this tree and the baseline's, each in its own child
process, alternated round by round so that a busy moment hits both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.measure import Figure, seconds, table
from bnnames.config import SampleConfig
from bnnames.runtime import THREADS, num_threads
from bnnames.sample import sample_names
from bnnames.storage.checkpoint import load_checkpoint, model_in_use

MATCH = "[^aeiou]*(ar|el)[a-z]{2,4}"
CASES = [  # (what, sample options, count on the default model, count on the wavenet)
    ("unconstrained", {}, 10_000, 2_000),
    ("--suffix iel", {"suffix": "iel"}, 1_000, 100),
    ("--contains zq", {"contains": ("zq",)}, 100, 5),
    (f"--match '{MATCH}'", {"match": MATCH}, 1_000, 100),
    ("--ranked -n 100", {"ranked": True}, 100, 100),
    ("--ranked -n 100 --suffix iel", {"ranked": True, "suffix": "iel"}, 100, 100),
]
ROUND = """
import json, sys, time, torch
from bnnames.config import SampleConfig
from bnnames.runtime import THREADS, num_threads
from bnnames.sample import sample_names
from bnnames.storage.checkpoint import load_checkpoint, model_in_use
ckpt = load_checkpoint(sys.argv[1])
model = model_in_use(ckpt)[0]
rates = []
with num_threads(THREADS):
    for r in range(int(sys.argv[2])):
        start = time.perf_counter()
        config, generator = SampleConfig(count=10_000), torch.Generator().manual_seed(r)
        sample_names(model, ckpt.vocab, ckpt.model_config.block_size, config, generator)
        rates.append(10_000 / (time.perf_counter() - start))
print(json.dumps(rates))
"""


def in_process(path: Path, rounds: int, wavenet: bool) -> list[Figure]:
    ckpt = load_checkpoint(path)
    model = model_in_use(ckpt)[0]
    figures = []
    for what, options, count, wavenet_count in CASES:
        n = wavenet_count if wavenet else count
        config = SampleConfig(count=n, **options)  # type: ignore[arg-type]
        rates = []
        with num_threads(THREADS):
            for r in range(rounds):
                generator = torch.Generator().manual_seed(r)
                draw = lambda c=config, g=generator: sample_names(model, ckpt.vocab, ckpt.model_config.block_size, c, g)  # noqa: E731
                rates.append(n / seconds(draw))
        figures.append(Figure.of(f"{path.stem}: {what} (-n {n:,}), in-process", "names/s", rates))
    return figures


def whole_process(path: Path, wavenet: bool) -> list[Figure]:
    figures = []
    for what, options, count, wavenet_count in CASES:
        n = wavenet_count if wavenet else count
        args = [sys.executable, "-m", "bnnames", "sample", "-c", str(path), "-n", str(n), "--seed", "1"]
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                args += [flag] if v is True else [flag, str(v)]
        walls = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - start)
        figures.append(Figure.of(f"{path.stem}: {what} (-n {n:,}), whole process", "s", walls))
    return figures


def against_baseline(path: Path, baseline: Path, rounds: int) -> Figure:
    """Unconstrained -n 10,000 in-process, this tree against `baseline`, alternated."""
    ours: list[float] = []
    theirs: list[float] = []
    here = Path(__file__).resolve().parents[1]
    for _ in range(rounds):
        for tree, into in ((here, ours), (baseline, theirs)):
            env = {**os.environ, "PYTHONPATH": str(tree)}
            out = subprocess.run(
                [sys.executable, "-c", ROUND, str(path), "3"],
                check=True,
                capture_output=True,
                text=True,
                env=env,
                cwd=tree,
            ).stdout
            into += json.loads(out)
    return Figure.of(
        f"{path.stem}: unconstrained -n 10,000, in-process, this tree",
        "names/s",
        ours,
        baseline=f"{baseline}",
        baseline_median=statistics.median(theirs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--default", type=Path, required=True)
    parser.add_argument("--wavenet", type=Path)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    figures = []
    if args.baseline:
        figures.append(against_baseline(args.default, args.baseline, args.rounds))
    figures += in_process(args.default, args.rounds, wavenet=False)
    if args.wavenet:
        figures += in_process(args.wavenet, max(3, args.rounds // 2), wavenet=True)
    figures += whole_process(args.default, wavenet=False)
    if args.wavenet:
        figures += whole_process(args.wavenet, wavenet=True)
    print(table(figures))
    out = Path(__file__).with_name("sampling-last-run.json")
    out.write_text(json.dumps([f.as_dict() for f in figures], indent=1) + "\n")


if __name__ == "__main__":
    main()
