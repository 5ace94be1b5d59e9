"""Run every benchmark in one go: `python -m benchmarks --data PATH [--json FILE]`."""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch

from benchmarks.inference import inference_figures
from benchmarks.measure import table
from benchmarks.process import startup_figures, train_figures, wavenet_process_figures
from benchmarks.step import step_figures
from benchmarks.wavenet import wavenet_figures
from bnnames.data import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("data/names.txt"), help="the standard names.txt")
    parser.add_argument("--json", type=Path, default=Path("benchmark.json"), help="where to write the figures")
    parser.add_argument("--runs", type=int, default=3, help="whole training processes of each kind (cold, warm)")
    parser.add_argument("--rounds", type=int, default=9, help="rounds of the in-process measurements")
    parser.add_argument("--steps", type=int, default=None, help="shorter training runs, for a quick try")
    parser.add_argument("--wavenet-steps", type=int, default=20_000, help="steps of the wavenet processes")
    parser.add_argument("--only", choices=("all", "default", "wavenet"), default="all", help="which model's figures")
    args = parser.parse_args()
    load_before = os.getloadavg()
    x, y = load_dataset(args.data, 42, 3).examples("train")
    vocab = int(max(x.max(), y.max())) + 1
    figures, losses = [], []
    with tempfile.TemporaryDirectory(prefix="bnnames-bench-") as workdir:
        if args.only in ("all", "default"):
            figures += step_figures(x, y, vocab, args.rounds)
            trained, checkpoint, losses = train_figures(args.data.resolve(), Path(workdir), args.runs, args.steps)
            figures += trained + inference_figures(checkpoint, args.rounds) + startup_figures(10)
        if args.only in ("all", "wavenet"):
            figures += wavenet_figures(str(args.data), args.rounds)
            figures += wavenet_process_figures(args.data.resolve(), Path(workdir), args.runs, args.wavenet_steps)
    report = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "final_losses_of_the_training_runs": losses,
        "figures": [f.as_dict() for f in figures],
    }
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(table(figures))
    print(f"\nfinal losses of the training runs: {', '.join(sorted(set(losses)))}")
    print(f"load average before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}; JSON: {args.json}")


main()
