"""`bnnames export --format onnx`: onnxruntime's next-character probabilities, chained over each
name, give the log-likelihood that `bnnames score` prints (1e-4), for every architecture and norm."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bnnames.errors import ConfigError
from bnnames.export.network import network_of
from bnnames.model import Embedding, Flatten, Layer, Linear, NamesModel
from bnnames.storage.checkpoint import load_checkpoint
from tests.helpers import TINY, cli

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the export extra: pip install -e '.[export]'")
onnx = pytest.importorskip("onnx")

MODELS = {
    "mlp": ("--norm", "batch"),
    "mlp-none": ("--norm", "none"),
    "mlp-layer": ("--norm", "layer"),
    "wavenet": ("--preset", "wavenet", "--n-embd", "4", "--n-hidden", "8", "--steps", "200"),
    "deep": ("--preset", "deep", "--n-hidden", "8", "--steps", "200"),  # BatchNorm on the logits too
}
NAMES = ["emma", "olivia", "ava", "xzq", "a", "christopher", "zzzzzzzzzzzz"]


def onnx_log_likelihoods(path, names: list[str]) -> list[float]:
    """Each name's log-likelihood chained from the ONNX model's logits, as a user of it would."""
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    tokens, block = json.loads(props["vocab"]), int(props["block_size"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids = {ch: i for i, ch in enumerate(tokens) if i}
    out = []
    for name in names:
        seq = [ids[ch] for ch in name] + [0]
        padded = [0] * block + seq
        contexts = np.array([padded[i : i + block] for i in range(len(seq))], dtype=np.int64)  # (n + 1, T)
        (logits,) = session.run(["logits"], {"context": contexts})
        logits = logits.astype(np.float64)
        log_probs = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
        log_probs -= logits.max(1, keepdims=True)
        out.append(float(log_probs[np.arange(len(seq)), seq].sum()))
    return out


@pytest.mark.parametrize("kind", list(MODELS))
def test_onnx_chained_probabilities_match_score(tmp_path, names_path, kind):
    ckpt, out = tmp_path / "m.safetensors", tmp_path / "m.onnx"
    cli("train", names_path, "-c", ckpt, *TINY, *MODELS[kind], "--device", "cpu")
    printed = cli("export", "-c", ckpt, "-o", out).stdout
    assert "onnx" in printed and out.exists()
    scored = json.loads(cli("score", "-c", ckpt, "--json", *NAMES).stdout)
    expected = [row["log_likelihood"] for row in scored]
    assert onnx_log_likelihoods(out, NAMES) == pytest.approx(expected, abs=1e-4)

    model = onnx.load(str(out))
    props = {p.key: p.value for p in model.metadata_props}
    vocab = load_checkpoint(ckpt).vocab
    assert json.loads(props["vocab"]) == ["", *vocab.chars] and json.loads(props["labels"]) == []
    assert [i.name for i in model.graph.input] == ["context"] and [o.name for o in model.graph.output] == ["logits"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and dims[1].dim_value == int(props["block_size"])


def test_batch_of_one_and_many_agree(tmp_path, names_path):
    """N is dynamic: a context gives the same logits alone as in a batch."""
    ckpt, out = tmp_path / "m.safetensors", tmp_path / "m.onnx"
    cli("train", names_path, "-c", ckpt, *TINY, "--device", "cpu")
    cli("export", "-c", ckpt, "--format", "onnx", "-o", out)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    many = np.random.default_rng(0).integers(0, 27, size=(50, 3))
    (batch,) = session.run(None, {"context": many})
    (one,) = session.run(None, {"context": many[7:8]})
    assert batch.shape == (50, 27) and np.allclose(batch[7], one[0], atol=1e-6)


class Odd(Layer):
    per_position = True

    def forward(self, x):  # type: ignore[no-untyped-def]
        return x * 2


def test_a_layer_the_exporters_do_not_know_is_named():
    from bnnames.data import Vocab

    model = NamesModel([Embedding(3, 2), Flatten(), Odd(), Linear(4, 3)])
    with pytest.raises(ConfigError, match="do not know its Odd layer"):
        network_of(model, Vocab(("a", "b")), 2)
