"""Checkpoint round trip: same logits, buffers and metadata; readable by plain safetensors."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch
from safetensors import safe_open

from bnnames.config import ModelConfig, TrainConfig
from bnnames.data import Vocab
from bnnames.errors import CheckpointError
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


def test_a_file_replaced_while_it_is_read_loads_as_the_file_opened(tmp_path, monkeypatch):
    """`train` replaces its checkpoint (atomically) while other commands read it: a reader gets the
    file it opened, header and tensors alike. It once took the header from one file and the bytes
    from the next, whose metadata had another length: a running_var read at a running_mean's offset."""
    import bnnames.storage.checkpoint as checkpoint

    first, later = _checkpoint(), _checkpoint()
    with torch.no_grad():
        for p in later.model.parameters():
            p.mul_(-3.0)
    later = dataclasses.replace(later, step=10, losses={"train": 1.25, "val": 1.5})  # a longer header
    path, newer = tmp_path / "c.safetensors", tmp_path / "newer.safetensors"
    save_checkpoint(path, first)
    save_checkpoint(newer, later)
    real = checkpoint.read_header

    def read_then_replace(*args):  # type: ignore[no-untyped-def]
        header = real(*args)
        os.replace(newer, path)  # what a training run's save does, between the two reads
        return header

    monkeypatch.setattr(checkpoint, "read_header", read_then_replace)
    loaded = load_checkpoint(path)
    assert loaded.step == first.step
    for (name, a), b in zip(first.model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), name
    monkeypatch.undo()
    assert load_checkpoint(path).step == 10  # the next read sees the new file, whole


def test_a_file_longer_than_its_tensors_is_refused_unread(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, _checkpoint())
    with open(path, "ab") as handle:
        handle.write(b"\0" * 64)
    with pytest.raises(CheckpointError, match="tensors should end at byte .*the file goes on"):
        load_checkpoint(path)
