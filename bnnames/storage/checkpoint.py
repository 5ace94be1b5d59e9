"""The one checkpoint format: a safetensors file with weights, BatchNorm buffers and metadata.

Tensors: every parameter and buffer of the model under its `state_dict` name (BatchNorm's
running_mean / running_var / num_batches_tracked, and calibrated_* when calibrated), plus
`train.generator_state`, the CPU generator's state after the last step (exact resume).
Since format version 2 the weights and buffers of the evaluation with the best val loss sit
beside them under the `best.` prefix, and the `curve` metadata holds the run's evaluations
(bnnames.schedule): its best point names their step and val loss. Version 1 files (no curve,
no best weights) still load. The optional `history` metadata (bnnames.history) holds the loss at
log-spaced steps; files written before it load with `history` None. Metadata (string -> string,
JSON where structured) rebuilds everything else. Loading lives in `load_checkpoint` alone: it checks the header before
reading tensors and never unpickles.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError
from safetensors.torch import load as tensors_from_bytes
from safetensors.torch import save as safetensors_bytes

from bnnames import __version__
from bnnames.config import ModelConfig, Stats, TrainConfig, Weights, check_choice, from_json_dict, to_json_dict
from bnnames.data import Dataset, Vocab, dataset_from_bytes, read_file_bytes
from bnnames.errors import BnnamesError, CheckpointError, ConfigError, DataError
from bnnames.history import History, history_from_json, history_to_json
from bnnames.model import BatchNorm, NamesModel, build_model
from bnnames.schedule import Curve, curve_from_json, curve_to_json
from bnnames.storage.files import atomic_write_bytes
from bnnames.storage.header import TensorEntry, open_checkpoint, read_header, short

FORMAT_NAME = "bnnames.checkpoint"
FORMAT_VERSION = "2"
READABLE_VERSIONS = ("1", "2")  # version 1: written before the curve and the best weights
GENERATOR_KEY = "train.generator_state"
BEST_PREFIX = "best."
META_KEYS_V1 = (
    "format",
    "format_version",
    "bnnames_version",
    "model_config",
    "train_config",
    "vocab",
    "data_path",
    "data_sha256",
    "split_seed",
    "step",
    "losses",
    "calibration",
)
META_KEYS = (*META_KEYS_V1, "curve")
DTYPE_NAMES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.uint8: "U8"}  # safetensors'
SHA256_HEX = re.compile("[0-9a-f]{64}")
NON_NEGATIVE = ("_var", "_std", "num_batches_tracked")  # BatchNorm statistics that cannot be below zero


@dataclass
class Checkpoint:
    """Everything a saved run holds; `model` is built and loaded, on the CPU."""

    model: NamesModel
    model_config: ModelConfig
    train_config: TrainConfig
    vocab: Vocab
    data_path: str
    data_sha256: str
    step: int  # optimisation steps done
    generator_state: torch.Tensor  # uint8 state of the CPU generator after `step` steps
    losses: dict[str, float] = field(default_factory=dict)  # final full-split losses, when done
    calibration: dict[str, Any] = field(default_factory=dict)  # how calibrated stats were made
    curve: Curve = field(default_factory=Curve)  # the evaluations so far and the schedule's state
    best_model: NamesModel | None = None  # the weights at curve.best (None before the first evaluation)
    history: History | None = None  # the loss at log-spaced steps (None: written before bnnames kept it)

    @property
    def complete(self) -> bool:
        return self.step >= self.train_config.steps or self.curve.stopped


def choose_weights(ckpt: Checkpoint, weights: str | None = None) -> tuple[NamesModel, str]:
    """The model a verb uses and its name: `weights` ("best" or "last"), else the best ones when
    the checkpoint keeps them (version 1 files and runs stopped before any evaluation do not)."""
    if weights is not None:
        check_choice("weights", weights, Weights)
    kind = weights or ("best" if ckpt.best_model is not None else "last")
    if kind == "last":
        return ckpt.model, kind
    if ckpt.best_model is None:
        raise ConfigError(
            "this checkpoint keeps no best weights (written before bnnames kept them, or stopped before "
            "the first evaluation): use --weights last"
        )
    return ckpt.best_model, kind


def model_in_use(ckpt: Checkpoint, weights: str | None = None, stats: str | None = None) -> tuple[NamesModel, str]:
    """The model that eval, sample and score run: the chosen weights (the best when kept) with the
    chosen BatchNorm statistics (calibrated when present); and the statistics' name."""
    if stats is not None:
        check_choice("stats", stats, Stats)
    model, _ = choose_weights(ckpt, weights)
    return model, model.choose_stats(stats)


def _state_tensors(model: NamesModel, prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}


def non_finite(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors that hold inf or NaN: the one test of a diverged or
    corrupt state, used by training before it saves and by the loader."""
    return [name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]


def save_checkpoint(path: Path, ckpt: Checkpoint) -> None:
    """Write atomically: a crash leaves the previous file or this one, never half of one."""
    tensors = _state_tensors(ckpt.model)
    if ckpt.best_model is not None:
        tensors.update(_state_tensors(ckpt.best_model, BEST_PREFIX))
    bad = non_finite(tensors)
    if bad:
        raise CheckpointError(f"refusing to save non-finite values in {', '.join(bad)}")
    tensors[GENERATOR_KEY] = ckpt.generator_state.to(torch.uint8).contiguous()
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "bnnames_version": __version__,
        "model_config": json.dumps(to_json_dict(ckpt.model_config)),
        "train_config": json.dumps(to_json_dict(ckpt.train_config)),
        "vocab": json.dumps(list(ckpt.vocab.chars), ensure_ascii=False),
        "data_path": ckpt.data_path,
        "data_sha256": ckpt.data_sha256,
        "split_seed": str(ckpt.train_config.split_seed),
        "step": str(ckpt.step),
        "losses": json.dumps(ckpt.losses),
        "calibration": json.dumps(ckpt.calibration),
        "curve": json.dumps(curve_to_json(ckpt.curve)),
    }
    if ckpt.history is not None:
        metadata["history"] = json.dumps(history_to_json(ckpt.history))
    try:
        atomic_write_bytes(path, safetensors_bytes(tensors, metadata))
    except OSError as err:
        raise CheckpointError(f"cannot write checkpoint {path}: {err.strerror or err}") from None


def load_checkpoint(path: Path) -> Checkpoint:
    """Open, validate and rebuild a checkpoint; every failure is a one-line CheckpointError.

    Order matters: the header is read with bounds, the metadata parsed, and every tensor's
    name, dtype and shape compared with what the stored config builds (on the meta device,
    no memory) before a single tensor byte is read; nothing is ever unpickled.
    """
    path = Path(path)
    with open_checkpoint(path) as handle:  # one open: the tensors of the very file whose header is checked
        meta, table = read_header(handle, path)
        if meta.get("format") != FORMAT_NAME:
            raise CheckpointError(f"{path} is a safetensors file but not a bnnames checkpoint")
        if meta.get("format_version") not in READABLE_VERSIONS:
            raise CheckpointError(
                f"{path} has checkpoint format version {short(meta.get('format_version'))}; this bnnames "
                f"({__version__}) reads versions {', '.join(READABLE_VERSIONS)}: upgrade bnnames or retrain"
            )
        try:
            ckpt_fields = _parse_metadata(meta)
            config, vocab = ckpt_fields["model_config"], ckpt_fields["vocab"]
            expected = _expected_tensors(config, vocab, table)
            if ckpt_fields["curve"].points:  # the best evaluation's weights, named as the last ones
                expected.update(_expected_tensors(config, vocab, table, BEST_PREFIX))
        except BnnamesError as err:
            raise CheckpointError(f"{path} has invalid metadata: {err}") from None
        _check_tensor_table(path, table, expected)
        tensors = _read_tensors(handle, path, table)
    generator_state = tensors.pop(GENERATOR_KEY)
    try:
        torch.Generator().set_state(generator_state)  # the same check resume will make
    except RuntimeError:
        raise CheckpointError(f"{path} holds an invalid random generator state: it cannot be resumed") from None
    best = {name.removeprefix(BEST_PREFIX): tensors.pop(name) for name in list(tensors) if name.startswith(BEST_PREFIX)}
    return Checkpoint(
        model=_rebuild(config, vocab, tensors),
        best_model=_rebuild(config, vocab, best) if best else None,
        generator_state=generator_state,
        **ckpt_fields,
    )


def _rebuild(config: ModelConfig, vocab: Vocab, tensors: dict[str, torch.Tensor]) -> NamesModel:
    model = build_model(config, vocab.size)
    for bn_name, bn in _named_batch_norms(model):
        if f"{bn_name}.calibrated_mean" in tensors:
            bn.set_calibration(bn.running_mean, getattr(bn, f"running_{bn.spread}"))
    model.load_state_dict(tensors, strict=True)
    return model


def _parse_metadata(meta: dict[str, str]) -> dict[str, Any]:
    version_1 = meta["format_version"] == "1"
    missing = [key for key in (META_KEYS_V1 if version_1 else META_KEYS) if key not in meta]
    if missing:
        raise CheckpointError(f"missing fields: {', '.join(missing)}")
    try:
        model_config = from_json_dict(ModelConfig, json.loads(meta["model_config"]))
        train_json = json.loads(meta["train_config"])
        if version_1 and isinstance(train_json, dict):
            train_json = {**train_json, "schedule": "fixed"}  # version 1 runs all decayed at --decay-at
        train_config = from_json_dict(TrainConfig, train_json)
        chars = json.loads(meta["vocab"])
        losses = json.loads(meta["losses"])
        calibration = json.loads(meta["calibration"])
        curve = {} if version_1 else json.loads(meta["curve"])
        history = json.loads(meta["history"]) if "history" in meta else None
        step = int(meta["step"])
        split_seed = int(meta["split_seed"])
    except (ValueError, TypeError, RecursionError):
        raise CheckpointError("a field is not valid JSON or not a number") from None
    if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars) or not chars:
        raise CheckpointError("the vocabulary must be a list of characters")
    vocab = Vocab(tuple(chars))
    if split_seed != train_config.split_seed:
        raise CheckpointError("split_seed disagrees with the train config")
    if not 0 <= step <= train_config.steps:
        raise CheckpointError(f"step {step} is outside 0..{train_config.steps}")
    good_losses = isinstance(losses, dict) and all(
        type(v) in (float, int) and math.isfinite(v) for v in losses.values()
    )
    if not good_losses or not isinstance(calibration, dict):
        raise CheckpointError("losses and calibration must be JSON objects of finite numbers")
    if not SHA256_HEX.fullmatch(meta["data_sha256"]):
        raise CheckpointError("data_sha256 is not a SHA-256 hex digest")
    if not meta["data_path"] or "\0" in meta["data_path"]:
        raise CheckpointError("data_path is not a file path")
    return {
        "model_config": model_config,
        "train_config": train_config,
        "vocab": vocab,
        "data_path": meta["data_path"],
        "data_sha256": meta["data_sha256"],
        "step": step,
        "losses": losses,
        "calibration": calibration,
        "curve": Curve() if version_1 else curve_from_json(curve, step),
        "history": None if history is None else history_from_json(history, step),
    }


def _expected_tensors(
    config: ModelConfig, vocab: Vocab, table: dict[str, TensorEntry], prefix: str = ""
) -> dict[str, TensorEntry]:
    """Name -> (dtype, shape) that `config` implies, built on the meta device (no allocation):
    the model's tensors under `prefix`, and with no prefix the generator state too."""
    with torch.device("meta"):
        model = build_model(config, vocab.size)
    shapes = {name: TensorEntry(DTYPE_NAMES[t.dtype], tuple(t.shape)) for name, t in model.state_dict().items()}
    for bn_name, bn in _named_batch_norms(model):
        if f"{prefix}{bn_name}.calibrated_mean" in table:  # calibration is optional, but all or nothing
            shapes[f"{bn_name}.calibrated_mean"] = shapes[f"{bn_name}.running_mean"]
            shapes[f"{bn_name}.calibrated_{bn.spread}"] = shapes[f"{bn_name}.running_mean"]
    expected = {prefix + name: entry for name, entry in shapes.items()}
    if not prefix:
        expected[GENERATOR_KEY] = TensorEntry("U8", tuple(torch.Generator().get_state().shape))
    return expected


def _check_tensor_table(path: Path, table: dict[str, TensorEntry], expected: dict[str, TensorEntry]) -> None:
    if set(table) != set(expected):
        odd = ", ".join(short(name, 40) for name in sorted(set(table) ^ set(expected))[:3])
        raise CheckpointError(f"{path} does not hold the tensors its config implies (e.g. {odd})")
    for name, want in expected.items():
        got = table[name]
        if got != want:
            raise CheckpointError(
                f"{path}: tensor {name} should be {want.dtype} {list(want.shape)} as the stored config says, "
                f"the file holds {got.dtype[:12]} {short(list(got.shape), 40)}"
            )


def _read_tensors(handle: BinaryIO, path: Path, table: dict[str, TensorEntry]) -> dict[str, torch.Tensor]:
    """Every tensor of the open file whose header `table` was checked, read from that same file:
    not by opening `path` again, where a running `train` may have put a newer file since, whose bytes
    would not match this table (docs/reliability.md). At most the bytes the table describes are
    read: a file with more is refused, not loaded."""
    size = handle.tell() + sum(entry.nbytes for entry in table.values())  # read_header stops at the data
    try:
        handle.seek(0)
        raw = handle.read(size + 1)
        if len(raw) != size:
            raise CheckpointError(
                f"{path} is corrupt or truncated (its tensors should end at byte {size:,}, "
                f"the file {'goes on' if len(raw) > size else f'ends at {len(raw):,}'})"
            )
        tensors = tensors_from_bytes(raw)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0][:120]
        raise CheckpointError(f"{path} is corrupt or truncated ({reason})") from None
    bad = non_finite(tensors)
    if bad:
        raise CheckpointError(f"{path} holds non-finite values in {', '.join(bad[:3])}: it cannot be used")
    negative = [name for name, t in tensors.items() if name.endswith(NON_NEGATIVE) and (t < 0).any()]
    if negative:  # a negative variance would turn into NaN at the first forward pass
        raise CheckpointError(f"{path} holds negative values in {', '.join(negative[:3])}: it is corrupt")
    return tensors


def _named_batch_norms(model: NamesModel) -> list[tuple[str, BatchNorm]]:
    return [(name, module) for name, module in model.named_modules() if isinstance(module, BatchNorm)]


def dataset_for(ckpt: Checkpoint, data: Path | None) -> Dataset:
    """The names file a checkpoint was trained on, split as in training.

    The file is found through the path stored in the checkpoint unless `data` points
    elsewhere. If its SHA-256 differs from the one recorded at training time, it is refused
    unless the user named it with `data` (then the caller tells them which file is used).
    """
    path = Path(data) if data is not None else Path(ckpt.data_path)
    if data is None and not os.path.exists(path):
        raise DataError(f"the names file of this checkpoint, {path}, is gone: pass --data PATH to the file")
    raw = read_file_bytes(path)
    if data is None and hashlib.sha256(raw).hexdigest() != ckpt.data_sha256:  # before parsing: say what changed
        raise DataError(
            f"{path} changed since training (its SHA-256 differs from the checkpoint's): "
            "pass --data PATH to use it anyway, or restore the original file"
        )
    return dataset_from_bytes(path, raw, ckpt.train_config.split_seed, ckpt.model_config.block_size, ckpt.vocab)


def dataset_if_found(ckpt: Checkpoint, data: Path | None) -> tuple[Dataset | None, str | None]:
    """The names file for a verb that can do without it (score's "in names file"), and the note to
    show: (None, why) when the checkpoint's own file is gone, changed or unreadable. A file the
    user named with `data` must be there (dataset_for's errors)."""
    if data is None:
        try:
            return dataset_for(ckpt, None), None
        except DataError as err:
            return None, str(err)
    dataset = dataset_for(ckpt, data)
    return dataset, data_note(ckpt, dataset)


def data_note(ckpt: Checkpoint, dataset: Dataset) -> str | None:
    """A warning to show when the user's --data is not the file the model was trained on."""
    if dataset.sha256 == ckpt.data_sha256:
        return None
    return f"using {dataset.path}, which differs from the names file this model was trained on"
