"""Checkpoint round trip: same logits, buffers and metadata; readable by plain safetensors."""

from __future__ import annotations

import json

import torch
from safetensors import safe_open

from bnnames.config import ModelConfig, TrainConfig
from bnnames.data import Vocab
from bnnames.model import create_model
from bnnames.storage.checkpoint import GENERATOR_KEY, Checkpoint, load_checkpoint, save_checkpoint


def _checkpoint(style: str = "paper") -> Checkpoint:
    g = torch.Generator().manual_seed(3)
    model = create_model(ModelConfig(n_hidden=8, bn_style=style), 5, g)
    model.train()
    model(torch.randint(0, 5, (16, 3), generator=g))  # move the running statistics off 0 and 1
    return Checkpoint(
        model=model,
        model_config=ModelConfig(n_hidden=8, bn_style=style),
        train_config=TrainConfig(steps=10),
        vocab=Vocab(("a", "b", "é", "ü")),
        data_path="/tmp/names.txt",
        data_sha256="ab" * 32,
        step=4,
        generator_state=g.get_state(),
        losses={"train": 2.5},
    )


def test_round_trip_gives_equal_tensors_and_logits(tmp_path):
    for style in ("paper", "lecture"):
        ckpt = _checkpoint(style)
        path = tmp_path / f"{style}.safetensors"
        save_checkpoint(path, ckpt)
        loaded = load_checkpoint(path)
        for (name, a), (name_b, b) in zip(ckpt.model.state_dict().items(), loaded.model.state_dict().items()):
            assert name == name_b and torch.equal(a, b)
        x = torch.randint(0, 5, (7, 3), generator=torch.Generator().manual_seed(9))
        ckpt.model.eval(), loaded.model.eval()
        assert torch.equal(ckpt.model(x), loaded.model(x))
        assert torch.equal(loaded.generator_state, ckpt.generator_state)
        assert (loaded.vocab, loaded.step, loaded.losses) == (ckpt.vocab, 4, {"train": 2.5})
        assert (loaded.model_config, loaded.train_config) == (ckpt.model_config, ckpt.train_config)


def test_calibrated_buffers_round_trip(tmp_path):
    ckpt = _checkpoint()
    bn = ckpt.model.batch_norms()[0]
    bn.set_calibration(torch.full((8,), 0.5), torch.full((8,), 2.0))
    save_checkpoint(tmp_path / "c.safetensors", ckpt)
    loaded = load_checkpoint(tmp_path / "c.safetensors")
    assert loaded.model.has_calibration()
    assert torch.equal(loaded.model.batch_norms()[0].calibrated_var, torch.full((8,), 2.0))


def test_plain_safetensors_sees_batchnorm_buffers_and_metadata(tmp_path):
    save_checkpoint(tmp_path / "c.safetensors", _checkpoint())
    with safe_open(str(tmp_path / "c.safetensors"), framework="pt") as f:
        keys, meta = set(f.keys()), f.metadata()
    assert {"layers.3.running_mean", "layers.3.running_var", "layers.3.num_batches_tracked", GENERATOR_KEY} <= keys
    assert meta["format"] == "bnnames.checkpoint" and meta["format_version"] == "2"
    assert json.loads(meta["vocab"]) == ["a", "b", "é", "ü"]
    assert json.loads(meta["model_config"])["n_hidden"] == 8
    assert meta["split_seed"] == "42" and meta["data_sha256"] == "ab" * 32 and meta["step"] == "4"
