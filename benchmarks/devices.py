"""µs per training step on the CPU (one thread, as bnnames trains) and on CUDA, over step sizes:
the measurement behind `--device auto` (bnnames.runtime.GPU_MIN_WORK, docs/gpu.md).

    python -m benchmarks.devices --data names.txt [--json FILE] [--budget SECONDS]

Each configuration trains with the engine a 20,000-step run would pick on that device (the fast
eager step, or the reference loop for wavenet), after a warm-up, for about `--budget` seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from bnnames.config import resolve_configs
from bnnames.data import load_dataset
from bnnames.model import create_model
from bnnames.runtime import GPU_MIN_WORK, THREADS, num_threads, resolve_device, step_work
from bnnames.training.engines import make_trainer, resolve_engine

# (label, preset, overrides): every preset, then the default MLP grown in width and batch
CONFIGS = [
    ("default", "default", {}),
    ("deep", "deep", {}),
    ("wavenet", "wavenet", {}),
    ("h200 b256", "default", {"batch_size": 256}),
    ("h512 b256", "default", {"n_hidden": 512, "batch_size": 256}),
    ("h200 b1024", "default", {"batch_size": 1024}),
    ("h1024 b256", "default", {"n_hidden": 1024, "batch_size": 256}),
    ("h512 b1024", "default", {"n_hidden": 512, "batch_size": 1024}),
    ("h1024 b1024", "default", {"n_hidden": 1024, "batch_size": 1024}),
    ("h1024 b4096", "default", {"n_hidden": 1024, "batch_size": 4096}),
]


def us_per_step(
    preset: str, overrides: dict, x: torch.Tensor, y: torch.Tensor, vocab: int, device: str, budget: float
) -> tuple[float, str]:
    """Mean µs/step over about `budget` seconds (after 20 warm-up steps), and the engine used."""
    model_config, config = resolve_configs(preset, {"steps": 20_000, **overrides})
    target = torch.device(device)
    generator = torch.Generator().manual_seed(config.seed)
    model = create_model(model_config, vocab, generator).to(target)
    engine = resolve_engine("auto", model, config, target)
    config = dataclasses.replace(config, engine=engine)
    trainer = make_trainer(model, config, target)
    xd, yd = x.to(target), y.to(target)
    done = trainer(xd, yd, generator, 0, 20)
    sync = torch.cuda.synchronize if target.type == "cuda" else (lambda: None)
    sync()
    steps, start = 0, time.perf_counter()
    chunk = 10
    while time.perf_counter() - start < budget:
        done = trainer(xd, yd, generator, done, done + chunk)
        sync()
        steps += chunk
    return (time.perf_counter() - start) / steps * 1e6, engine


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.devices", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("data/names.txt"))
    parser.add_argument("--json", type=Path, default=Path("devices.json"))
    parser.add_argument("--budget", type=float, default=0.5, help="seconds of timed steps per configuration and device")
    args = parser.parse_args()
    x, y = load_dataset(args.data, 42, 3).examples("train")
    x8, y8 = load_dataset(args.data, 42, 8).examples("train")  # wavenet's context of 8
    vocab = int(max(x.max(), y.max())) + 1
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "cuda" in devices:
        resolve_device("cuda")  # deterministic kernels, as a bnnames run on CUDA has them
    rows = []
    print(f"{'config':<12} {'MACs/step':>12} " + " ".join(f"{d + ' µs/step':>14}" for d in devices) + "  engine")
    with num_threads(THREADS):
        for label, preset, overrides in CONFIGS:
            model_config, config = resolve_configs(preset, overrides)
            work = step_work(model_config, vocab, config.batch_size)
            data = (x8, y8) if model_config.block_size == 8 else (x, y)
            timed = {d: us_per_step(preset, overrides, *data, vocab, d, args.budget) for d in devices}
            rows.append({"config": label, "work": work, **{d: us for d, (us, _) in timed.items()}})
            engine = next(iter(timed.values()))[1]
            print(f"{label:<12} {work:>12,} " + " ".join(f"{timed[d][0]:>14,.0f}" for d in devices) + f"  {engine}")
    report = {
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if "cuda" in devices else None,
        "threads": THREADS,
        "gpu_min_work": GPU_MIN_WORK,
        "rows": rows,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
