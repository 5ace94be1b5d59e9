"""How fast the hand-derived step could go on CUDA as a graph: a measurement for docs/gpu.md, not
a feature (issue 13's part 4 is left open). Captures STEPS eager fast steps (constant lr, batches
copied into static buffers before each replay) with `torch.cuda.graph`, in deterministic mode as a
bnnames CUDA run has it, and prints µs/step of the graph against the plain eager step.

    python -m benchmarks.cuda_graph --data names.txt
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bnnames.config import resolve_configs
from bnnames.data import load_dataset
from bnnames.model import create_model
from bnnames.runtime import resolve_device
from bnnames.training.fast.plan import plan_of, state_of
from bnnames.training.fast.step import forward_backward, update_

STEPS = 8  # steps per replay


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cuda_graph", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("data/names.txt"))
    args = parser.parse_args()
    device = resolve_device("cuda")
    x, y = (t.to(device) for t in load_dataset(args.data, 42, 3).examples("train"))
    for label, overrides in [("default", {}), ("h1024 b4096", {"n_hidden": 1024, "batch_size": 4096})]:
        eager, replayed = measure(overrides, x, y)
        print(f"{label}: eager {eager:,.0f} µs/step, graph of {STEPS} steps {replayed} µs/step")


@torch.no_grad()
def measure(overrides: dict, x: torch.Tensor, y: torch.Tensor) -> tuple[float, str]:
    """µs/step of the eager fast step, and of its graph (or why the capture failed)."""
    model_config, config = resolve_configs("default", overrides)
    model = create_model(model_config, 27, torch.Generator().manual_seed(1)).to(x.device)
    plan = plan_of(model)
    params, buffers = state_of(model)
    ix = torch.randint(0, x.shape[0], (STEPS, config.batch_size), device=x.device)
    ctx, target = x[ix].clone(), y[ix].clone()  # the static inputs a replay reads

    def steps() -> None:
        for k in range(STEPS):
            _, grads, stats = forward_backward(plan, params, ctx[k], target[k])
            update_(plan, params, buffers, grads, stats, config.lr)

    eager = _us_per_step(steps)
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            steps()  # warm-up on a side stream, as torch.cuda.graph asks
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            steps()
        return eager, f"{_us_per_step(graph.replay):,.0f}"
    except RuntimeError as err:
        return eager, f"capture failed: {str(err).splitlines()[0][:160]}"


def _us_per_step(run) -> float:  # type: ignore[no-untyped-def]
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < 1.0:
        run()
        calls += 1
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / (calls * STEPS) * 1e6


if __name__ == "__main__":
    main()
