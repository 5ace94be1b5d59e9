"""Bad checkpoints: every command answers one line, exit 1, and leaves the file byte for byte."""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as safetensors_bytes

from tests.helpers import TINY, cli, fail_with

COMMANDS = (
    ("eval",),
    ("sample", "-n", "3"),
    ("calibrate",),
    ("score", "anna"),
    ("train", "--resume", "--steps", "300"),
)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> bytes:
    """The bytes of a real checkpoint, trained on a small names file that stays where it is."""
    folder = tmp_path_factory.mktemp("good")
    names = folder / "names.txt"
    names.write_text("\n".join(["anna", "bob", "carl", "dora", "emil", "fay", "gus", "hana", "ivo", "jo"] * 4))
    cli("train", names, *TINY, "-c", folder / "c.safetensors")
    return (folder / "c.safetensors").read_bytes()


def split(raw: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def join(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def edit_meta(key: str, value: Callable[[str], str | None]) -> Callable[[bytes], bytes]:
    def mutate(raw: bytes) -> bytes:
        header, data = split(raw)
        new = value(header["__metadata__"][key])
        if new is None:
            del header["__metadata__"][key]
        else:
            header["__metadata__"][key] = new
        return join(header, data)

    return mutate


def edit_json_meta(key: str, change: Callable[[object], object]) -> Callable[[bytes], bytes]:
    return edit_meta(key, lambda text: json.dumps(change(json.loads(text))))


def edit_entry(name: str, change: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    def mutate(raw: bytes) -> bytes:
        header, data = split(raw)
        change(header.setdefault(name, {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}))
        return join(header, data)

    return mutate


def without_entry(name: str) -> Callable[[bytes], bytes]:
    def mutate(raw: bytes) -> bytes:
        header, data = split(raw)
        del header[name]
        return join(header, data)

    return mutate


def overwrite_tensor(name: str, payload: bytes) -> Callable[[bytes], bytes]:
    """Replace the first bytes of one tensor's data (the header stays valid)."""

    def mutate(raw: bytes) -> bytes:
        header, data = split(raw)
        start = header[name]["data_offsets"][0]
        return raw[: len(raw) - len(data) + start] + payload + raw[len(raw) - len(data) + start + len(payload) :]

    return mutate


def plain_safetensors(_: bytes) -> bytes:
    return safetensors_bytes({"weight": torch.ones(3)}, {"format": "pt"})


def with_model_config(**changes) -> Callable[[bytes], bytes]:
    return edit_json_meta("model_config", lambda config: {**config, **changes})


SHAPE_MESSAGE = "layers.2.weight should be F32 [9, 9] as the stored config says, the file holds F32 [9, 8]"
CASES: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "empty file": (lambda raw: b"", "is not a safetensors checkpoint (only 0 bytes long)"),
    "seven bytes": (lambda raw: b"\x01" * 7, "only 7 bytes long"),
    "a text file": (lambda raw: b"Anna\nBob\nCarl\n" * 10, "claims a"),
    "oversized header": (lambda raw: struct.pack("<Q", 1 << 40) + raw[8:], "claims a 1,099,511,627,776-byte header"),
    "header past the end": (lambda raw: struct.pack("<Q", len(raw)) + raw[8:], "header runs past the end"),
    "header not JSON": (lambda raw: struct.pack("<Q", 9) + b"not json!" + raw, "corrupt header"),
    "header a JSON list": (lambda raw: struct.pack("<Q", 2) + b"[]", "corrupt header"),
    "deeply nested header": (lambda raw: struct.pack("<Q", 100_000) + b"[" * 100_000, "corrupt header"),
    "header not UTF-8": (lambda raw: struct.pack("<Q", 4) + b"\xff\xfe{}", "corrupt header"),
    "truncated in the header": (lambda raw: raw[:40], "header runs past the end"),
    "truncated by one byte": (lambda raw: raw[:-1], "is corrupt or truncated"),
    "truncated in the data": (lambda raw: raw[: len(raw) - 500], "is corrupt or truncated"),
    "data offsets lie": (
        edit_entry("layers.0.weight", lambda e: e.update(data_offsets=[0, 8])),
        "corrupt or truncated",
    ),
    "plain safetensors": (plain_safetensors, "is a safetensors file but not a bnnames checkpoint"),
    "metadata not text": (edit_entry("__metadata__", lambda m: m.update(step=7)), "its metadata is not text"),
    "format version 3": (edit_meta("format_version", lambda v: "3"), "has checkpoint format version '3'"),
    "format missing": (edit_meta("format", lambda v: None), "not a bnnames checkpoint"),
    "vocab missing": (edit_meta("vocab", lambda v: None), "invalid metadata: missing fields: vocab"),
    "model config not JSON": (edit_meta("model_config", lambda v: v[:-1]), "not valid JSON"),
    "model config unknown field": (with_model_config(wings=2), "ModelConfig has unknown fields: 'wings'"),
    "model config wrong type": (with_model_config(n_hidden="8"), "ModelConfig.n_hidden must be int"),
    "model config out of range": (with_model_config(n_hidden=-8), "--n-hidden must be between 1"),
    "huge model config": (with_model_config(n_hidden=16384, n_layers=64), "does not hold the tensors its config"),
    "shape disagrees with config": (with_model_config(n_hidden=9), SHAPE_MESSAGE),
    "vocab disagrees with shapes": (edit_json_meta("vocab", lambda v: v + ["z"]), "as the stored config says"),
    "vocab unsorted": (edit_json_meta("vocab", lambda v: v[::-1]), "sorted list of distinct printable"),
    "vocab with a newline": (edit_json_meta("vocab", lambda v: ["\n"] + v[1:]), "printable characters"),
    "step out of range": (edit_meta("step", lambda v: "1000000"), "step 1000000 is outside 0..200"),
    "step not a number": (edit_meta("step", lambda v: "x" * 5000), "not valid JSON or not a number"),
    "bad data hash": (edit_meta("data_sha256", lambda v: v.upper()), "not a SHA-256 hex digest"),
    "data path with NUL": (edit_meta("data_path", lambda v: v + "\0"), "data_path is not a file path"),
    "non-finite loss": (edit_meta("losses", lambda v: '{"train": NaN}'), "finite numbers"),
    "tensor missing": (without_entry("layers.3.running_mean"), "does not hold the tensors its config implies"),
    "extra tensor": (edit_entry("evil.code", lambda e: None), "the tensors its config implies (e.g. 'evil.code')"),
    "calibration half present": (edit_entry("layers.3.calibrated_mean", lambda e: None), "calibrated_var"),
    "dtype changed": (edit_entry("layers.2.weight", lambda e: e.update(dtype="F64")), "should be F32 [9, 8]"),
    "shape not a list": (edit_entry("layers.2.weight", lambda e: e.update(shape=5)), "described wrongly"),
    "negative shape": (edit_entry("layers.2.weight", lambda e: e.update(shape=[-9, 8])), "described wrongly"),
    "entry not an object": (edit_entry("layers.2.weight", lambda e: e.clear()), "described wrongly"),
    "NaN weight": (overwrite_tensor("layers.2.weight", struct.pack("<f", math.nan)), "non-finite values in layers.2"),
    "infinite running variance": (overwrite_tensor("layers.3.running_var", struct.pack("<f", math.inf)), "non-finite"),
    "negative running variance": (
        overwrite_tensor("layers.3.running_var", struct.pack("<f", -1.0)),
        "holds negative values in layers.3.running_var",
    ),
    "invalid generator state": (overwrite_tensor("train.generator_state", bytes(5056)), "invalid random generator"),
    # format 2: the curve and the best weights, checked as strictly as the rest, before any tensor is read
    "curve missing": (edit_meta("curve", lambda v: None), "invalid metadata: missing fields: curve"),
    "curve not JSON": (edit_meta("curve", lambda v: v[:-1]), "not valid JSON"),
    "curve point past the step": (
        edit_json_meta("curve", lambda c: {**c, "points": [*c["points"], [10**6, 2.0, 2.0, 0.1]]}),
        "curve steps must increase and lie within 0..200",
    ),
    "curve loss not finite": (
        edit_json_meta("curve", lambda c: {**c, "points": [[100, math.nan, 2.0, 0.1]]}),
        "curve points must be [step, val, train, lr] with finite losses",
    ),
    "curve decay not a step": (edit_json_meta("curve", lambda c: {**c, "decayed_at": "50"}), "decayed_at must be"),
    "best weights of the wrong shape": (
        edit_entry("best.layers.2.weight", lambda e: e.update(shape=[9, 9])),
        "best.layers.2.weight should be F32 [9, 8]",
    ),
    "best weights missing": (without_entry("best.layers.2.weight"), "does not hold the tensors its config implies"),
    "best weights without a curve": (
        edit_json_meta("curve", lambda c: {**c, "points": []}),
        "does not hold the tensors its config implies",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_every_command_refuses_a_bad_checkpoint_and_leaves_it_alone(case, good, tmp_path):
    mutate, message = CASES[case]
    path = tmp_path / "c.safetensors"
    raw = mutate(good)
    path.write_bytes(raw)
    for command in COMMANDS:
        fail_with(*command, "-c", path, fragments=(message, str(path)))
        assert path.read_bytes() == raw, command
    assert os.listdir(tmp_path) == ["c.safetensors"]  # no temporary file left behind


def test_the_good_checkpoint_passes_every_command(good, tmp_path):
    """The control: the same commands on the unmutated bytes succeed."""
    path = tmp_path / "c.safetensors"
    path.write_bytes(good)
    for command in COMMANDS:
        cli(*command, "-c", path)


@pytest.mark.parametrize("kind", ["missing", "folder", "fifo"])
def test_a_checkpoint_path_that_is_not_a_file(kind, tmp_path):
    path = tmp_path / "c.safetensors"
    message = {
        "missing": "does not exist: train one with `bnnames train`",
        "folder": "is a folder, not a checkpoint",
        "fifo": "is not a regular file",
    }[kind]
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block forever: it must be refused unopened
    for command in COMMANDS:
        fail_with(*command, "-c", path, fragments=(message,))


def test_the_loader_reads_no_tensor_before_the_table_is_checked(good, tmp_path, monkeypatch):
    """A checkpoint whose config disagrees with its tensors is refused before its tensors are read."""
    import bnnames.storage.checkpoint

    opened: list[str] = []
    monkeypatch.setattr(bnnames.storage.checkpoint, "tensors_from_bytes", lambda *a, **k: opened.append("opened"))
    path = tmp_path / "c.safetensors"
    path.write_bytes(with_model_config(n_hidden=16384)(good))
    fail_with("eval", "-c", path, fragments=("should be F32 [9, 16384]",))
    assert opened == []


def test_bad_checkpoint_debug_mode_shows_the_traceback(good, tmp_path, monkeypatch):
    path = Path(tmp_path / "c.safetensors")
    path.write_bytes(b"")
    result = cli("--debug", "eval", "-c", path, code=1)
    assert type(result.exception).__name__ == "CheckpointError"
    monkeypatch.setenv("BNNAMES_DEBUG", "1")
    assert type(cli("eval", "-c", path, code=1).exception).__name__ == "CheckpointError"


def test_finite_but_absurd_weights_give_one_line_not_a_crash(good, tmp_path):
    """Every value is finite, so the checkpoint loads; its outputs overflow to inf and NaN."""
    from bnnames.storage.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "c.safetensors"
    path.write_bytes(good)
    ckpt = load_checkpoint(path)
    for model in (ckpt.model, ckpt.best_model):  # the last and the best weights
        _, _, _, bn, _, out = model.layers
        with torch.no_grad():
            bn.weight.zero_(), bn.bias.fill_(10.0)  # every hidden unit at tanh(10) = 1
            out.weight[:, 1] = 3e38  # so logit 1 is 8 x 3e38 = inf for every context
    save_checkpoint(path, ckpt)
    before = path.read_bytes()
    fail_with("eval", "-c", path, fragments=("the val loss of", "is nan: its weights are corrupt or diverged"))
    fail_with("sample", "-c", path, fragments=("this model gives non-finite probabilities",))
    fail_with("score", "anna", "-c", path, fragments=("this model gives non-finite log-likelihoods",))
    assert path.read_bytes() == before
