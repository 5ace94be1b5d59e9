"""The exports' speed and size: the web page's names per second in headless Chromium (exact and
rejection sampling, with and without constraints), the page's and the ONNX file's size, and
onnxruntime's names per second against the in-process sampler (`bnnames sample`'s).

    python -m benchmarks.export DEFAULT.safetensors WAVENET.safetensors

Writes benchmarks/export-last-run.json; docs/export.md quotes it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bnnames.api import load
from bnnames.config import SampleConfig
from bnnames.sample import sample_names
from bnnames.storage.checkpoint import load_checkpoint, model_in_use

NAMES = 1000  # names a measurement draws (the page's most a click)
QUERIES = {"plain": {}, "suffix ia, 4-8 long": {"suffix": "ia", "min": 4, "max": 8}}


def page_rate(browser: str, page: Path, query: dict[str, object], folder: Path) -> dict[str, object]:
    """Names per second as the page times itself (loading and the exact method's table included)."""
    url = page.as_uri() + "?" + "&".join(f"{k}={v}" for k, v in {"n": NAMES, "seed": 1, **query}.items())
    dom = subprocess.run(
        [browser, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={folder}/p", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    data = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', re.search(r'<div id="status"([^>]*)>', dom).group(1)))
    return {
        "method": data["method"],
        "names": int(data["drawn"]),
        "names_per_s": round(int(data["drawn"]) / (float(data["ms"]) / 1000)),
    }


def onnx_rate(path: Path, rows: int = NAMES) -> float:
    """Names per second drawn through onnxruntime, all rows advancing together as `sample` does."""
    import onnx
    import onnxruntime as ort

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    block = int(props["block_size"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    context = np.zeros((rows, block), np.int64)
    done = np.zeros(rows, bool)
    for _ in range(30):
        (logits,) = session.run(["logits"], {"context": context})
        probs = np.exp(logits - logits.max(1, keepdims=True))
        cdf = np.cumsum(probs, 1)
        nxt = (cdf < rng.random((rows, 1)) * cdf[:, -1:]).sum(1)
        done |= nxt == 0
        if done.all():
            break
        context = np.concatenate([context[:, 1:], nxt[:, None]], 1)
    return rows / (time.perf_counter() - start)


def torch_rate(ckpt_path: Path) -> float:
    ckpt = load_checkpoint(ckpt_path)
    model, _ = model_in_use(ckpt)
    start = time.perf_counter()
    sample_names(
        model, ckpt.vocab, ckpt.model_config.block_size, SampleConfig(count=NAMES), torch.Generator().manual_seed(0)
    )
    return NAMES / (time.perf_counter() - start)


def main(default: Path, wavenet: Path) -> dict[str, object]:
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, ckpt in (("default", default), ("wavenet", wavenet)):
            page, graph = Path(folder) / f"{label}.html", Path(folder) / f"{label}.onnx"
            row: dict[str, object] = {"page_bytes": load(ckpt).export(page).bytes}
            row["onnx_bytes"] = load(ckpt).export(graph).bytes
            if browser:
                row["page"] = {name: page_rate(browser, page, q, Path(folder)) for name, q in QUERIES.items()}
            torch.set_num_threads(1)
            row["onnxruntime_names_per_s"] = round(onnx_rate(graph))
            row["in_process_names_per_s"] = round(torch_rate(ckpt))
            results[label] = row
            print(label, json.dumps(row))
    Path(__file__).with_name("export-last-run.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
