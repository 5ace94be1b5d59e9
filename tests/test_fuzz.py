"""Property-based fuzzing of the two readers of untrusted bytes: names files and checkpoints.

The property: whatever the bytes, the only outcomes are a valid result or the project's own
error (a BnnamesError) with a one-line message. Inputs are random bytes, random text, and
mutations of real files: bit flips, truncations, insertions, and structured edits of a
checkpoint's JSON header (tensor table and metadata) that keep the header parseable so the
deeper checks are reached.

About 5,900 examples per run, deterministic (derandomized) so the suite is stable and fast.
A longer, random fuzz run: BNNAMES_FUZZ_SCALE=50 python -m pytest tests/test_fuzz.py
(multiplies every example count and draws new examples each run).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnnames.api import load
from bnnames.config import ModelConfig, SampleConfig, TrainConfig
from bnnames.data import MAX_NAME_LENGTH, Vocab, dataset_from_bytes, parse_names, read_names
from bnnames.errors import BnnamesError
from bnnames.model import create_model
from bnnames.storage.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

SCALE = float(os.environ.get("BNNAMES_FUZZ_SCALE", "1"))


def fuzz(examples: int):
    """Hypothesis settings for `examples` (times BNNAMES_FUZZ_SCALE) examples, no deadline."""
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,  # a loaded 2-core machine makes timings meaningless
        derandomize=SCALE == 1,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def assert_clean(err: BnnamesError) -> None:
    message = str(err)
    assert message and "\n" not in message and "\r" not in message, repr(message)
    assert len(message) < 600, message


def check_names(raw: bytes) -> None:
    try:
        names = parse_names(raw, "fuzz.txt")
    except BnnamesError as err:
        assert_clean(err)
        return
    assert names
    for name in names:
        assert name == name.strip() and 0 < len(name) <= MAX_NAME_LENGTH and name.isprintable()
    try:  # a file that parses goes on to the vocabulary and the split
        dataset = dataset_from_bytes(Path("fuzz.txt"), raw, 42, 3, None)
    except BnnamesError as err:
        assert_clean(err)
        return
    assert sum(len(dataset.splits.get(s)) for s in ("train", "val", "test")) == len(names)


# ---- names files

NAMES = "anna\nbob\r\n  carl \n\nZoë\nO'Brien\nJ. R.\n\ufeffd\u00e9j\u00e0\n".encode() * 3


@fuzz(1500)
@given(st.binary(max_size=600))
def test_random_bytes_as_a_names_file(raw):
    check_names(raw)


@fuzz(1200)
@given(st.text(max_size=400))
def test_random_text_as_a_names_file(text):
    check_names(text.encode("utf-8", "surrogatepass"))


@fuzz(1000)
@given(
    st.lists(st.tuples(st.integers(0, len(NAMES) - 1), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, len(NAMES)),
)
def test_mutated_names_file(edits, cut):
    raw = bytearray(NAMES[:cut] if cut % 3 == 0 else NAMES)
    for position, value in edits:
        if position < len(raw):
            raw[position] = value
    check_names(bytes(raw))


@fuzz(200)
@given(st.binary(max_size=300))
def test_read_names_from_a_real_file(raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "names.txt"
        path.write_bytes(raw)
        try:
            assert read_names(path) == parse_names(raw, str(path))
        except BnnamesError as err:
            assert_clean(err)


# ---- checkpoints


def _good_checkpoint() -> bytes:
    generator = torch.Generator().manual_seed(0)
    config = ModelConfig(n_hidden=6, n_embd=2)
    model = create_model(config, 5, generator)
    model.train()
    model(torch.randint(0, 5, (8, 3), generator=generator))
    ckpt = Checkpoint(
        model=model,
        model_config=config,
        train_config=TrainConfig(steps=10),
        vocab=Vocab(("a", "b", "é", "ü")),
        data_path="/tmp/names.txt",
        data_sha256="ab" * 32,
        step=4,
        generator_state=generator.get_state(),
        losses={"train": 2.5},
    )
    with tempfile.TemporaryDirectory() as folder:
        save_checkpoint(Path(folder) / "c.safetensors", ckpt)
        return (Path(folder) / "c.safetensors").read_bytes()


GOOD = _good_checkpoint()
HEADER_END = 8 + struct.unpack("<Q", GOOD[:8])[0]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """One file rewritten by every example (a fresh folder per example costs more than the load)."""
    return tmp_path_factory.mktemp("fuzz") / "c.safetensors"


def check_checkpoint(path: Path, raw: bytes) -> None:
    """Load `raw`; a result must work (a forward pass), a failure must be our one-line error."""
    path.write_bytes(raw)
    try:
        ckpt = load_checkpoint(path)
    except BnnamesError as err:
        assert_clean(err)
        return
    ckpt.model.eval()
    contexts = torch.zeros((2, ckpt.model_config.block_size), dtype=torch.long)
    assert ckpt.model(contexts).shape == (2, ckpt.vocab.size)
    try:  # and it samples, or says in one line why it cannot (weights that overflow)
        report = load(path).draw(SampleConfig(count=1, max_length=4, seed=0))
        names = [name for batch in report.batches for name in batch]
    except BnnamesError as err:
        assert_clean(err)
        return
    assert len(names) == 1 and set(names[0]) <= set(ckpt.vocab.chars)


def test_the_unmutated_checkpoint_loads(scratch):
    check_checkpoint(scratch, GOOD)
    assert load_checkpoint(scratch).step == 4


@fuzz(300)
@given(st.binary(max_size=2000))
def test_random_bytes_as_a_checkpoint(scratch, raw):
    check_checkpoint(scratch, raw)


@fuzz(300)
@given(st.binary(max_size=400))
def test_random_bytes_behind_a_plausible_length(scratch, body):
    check_checkpoint(scratch, struct.pack("<Q", len(body)) + body)


positions = st.one_of(st.integers(0, HEADER_END - 1), st.integers(0, len(GOOD) - 1))  # the header half the time


@fuzz(800)
@given(st.lists(st.tuples(positions, st.integers(0, 7)), min_size=1, max_size=4))
def test_bit_flips(scratch, flips):
    raw = bytearray(GOOD)
    for position, bit in flips:
        raw[position] ^= 1 << bit
    check_checkpoint(scratch, bytes(raw))


@fuzz(300)
@given(st.integers(0, len(GOOD) - 1), st.binary(max_size=16), st.booleans())
def test_truncations_insertions_and_deletions(scratch, position, inserted, delete):
    raw = GOOD[:position] + (GOOD[position + len(inserted) + 1 :] if delete else inserted)
    check_checkpoint(scratch, raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)
shapes = st.one_of(st.lists(st.integers(-2, 2**40), max_size=3), json_values)


def _edit_header(data, header: dict) -> None:
    """One structured edit, drawn by hypothesis, of a parsed header."""
    meta = header.get("__metadata__", {})
    names = sorted(k for k in header if k != "__metadata__")
    kinds = ["entry", "new entry", "drop entry", "drop metadata"] if names else ["new entry"]
    if meta:
        kinds += ["meta text", "meta json", "config field", "drop meta"]
    kind = data.draw(st.sampled_from(kinds))
    if kind == "meta text":
        meta[data.draw(st.sampled_from(sorted(meta)))] = data.draw(st.text(max_size=30))
    elif kind == "meta json":
        meta[data.draw(st.sampled_from(sorted(meta)))] = json.dumps(data.draw(json_values))
    elif kind == "config field" and "model_config" in meta and "train_config" in meta:
        key = data.draw(st.sampled_from(["model_config", "train_config"]))
        try:
            config = json.loads(meta[key])
        except ValueError:  # an earlier edit made it text
            config = None
        if isinstance(config, dict) and config:
            config[data.draw(st.sampled_from(sorted(config)))] = data.draw(json_values | st.integers(0, 70))
            meta[key] = json.dumps(config)
    elif kind == "drop meta":
        meta.pop(data.draw(st.sampled_from(sorted(meta))))
    elif kind == "drop entry":
        header.pop(data.draw(st.sampled_from(names)))
    elif kind == "drop metadata":
        header.pop("__metadata__", None)
    elif kind == "entry" and isinstance(entry := header[data.draw(st.sampled_from(names))], dict):
        field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
        entry[field] = data.draw(
            {
                "dtype": st.sampled_from(["F32", "F64", "I64", "U8", "BOOL", "F16"]) | json_values,
                "shape": shapes,
                "data_offsets": st.lists(st.integers(-1, 2**40), max_size=3),
            }[field]
        )
    elif kind == "new entry":
        header[data.draw(st.text(max_size=20))] = data.draw(json_values)


@fuzz(1000)
@given(st.data())
def test_structured_header_edits(scratch, data):
    """Edit the header as JSON and re-frame it with a correct length, so the deep checks run."""
    header = json.loads(GOOD[8:HEADER_END])
    for _ in range(data.draw(st.integers(1, 3))):
        _edit_header(data, header)
    text = json.dumps(header).encode()
    check_checkpoint(scratch, struct.pack("<Q", len(text)) + text + GOOD[HEADER_END:])
