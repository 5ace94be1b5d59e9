"""Names files, the vocabulary, the 80/10/10 split and the (context, next character) examples."""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from bnnames.errors import DataError

BOUNDARY = 0  # id of the token that marks both the start and the end of a name
MAX_NAME_LENGTH = 256  # longer lines are not names: refusing them bounds memory and time
MAX_FILE_BYTES = 256 * 1024 * 1024
CONTROL_HINTS = {  # control characters a real text file may hold, with what to do about them
    "\r": "a carriage return without a newline: save the file with \\n or \\r\\n line ends",
    "\t": "a tab: put one name a line, without tabs",
}


def read_names(path: Path) -> list[str]:
    """One name a line, UTF-8; whitespace around names is stripped, blank lines skipped."""
    return parse_names(read_file_bytes(path), str(path))


def read_file_bytes(path: Path) -> bytes:
    """The bytes of a names file, with one clear error for each way that can fail.

    Reads at most MAX_FILE_BYTES + 1 bytes, so a pipe (`<(grep ...)`) works and an endless
    stream cannot exhaust memory.
    """
    path = Path(path)
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder, not a names file: pass a text file with one name a line")
    try:
        with path.open("rb") as handle:
            if os.fstat(handle.fileno()).st_size > MAX_FILE_BYTES:
                raise DataError(f"{path} is larger than {MAX_FILE_BYTES >> 20} MiB: is it really a list of names?")
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise DataError(
            f"names file {path} does not exist: pass the path of a text file with one name a line"
        ) from None
    except (OSError, ValueError) as err:  # ValueError: a path with a NUL byte (from a checkpoint)
        raise DataError(f"cannot read names file {path}: {getattr(err, 'strerror', None) or err}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise DataError(f"{path} is larger than {MAX_FILE_BYTES >> 20} MiB: is it really a list of names?")
    return raw


def parse_names(raw: bytes, source: str = "names file") -> list[str]:
    """Decode and check the bytes of a names file (kept separate from I/O so it can be fuzzed)."""
    try:
        text = raw.decode("utf-8-sig")  # a leading byte-order mark is not part of the first name
    except UnicodeDecodeError as err:
        raise DataError(f"{source} is not UTF-8 text (bad byte at offset {err.start}): save it as UTF-8") from None
    names = []
    for number, line in enumerate(text.split("\n"), start=1):
        name = line.strip()  # also removes the '\r' of CRLF line ends
        if not name:
            continue
        bad = next((ch for ch in name if not ch.isprintable()), None)
        if bad is not None:
            hint = CONTROL_HINTS.get(bad, "this looks like a binary file, not a text file of names")
            raise DataError(f"{source} line {number} holds control character U+{ord(bad):04X}: {hint}")
        if len(name) > MAX_NAME_LENGTH:
            raise DataError(
                f"{source} line {number} is {len(name)} characters long (at most {MAX_NAME_LENGTH}): "
                "put one name on each line"
            )
        names.append(name)
    if not names:
        raise DataError(f"{source} holds no names: it needs one name a line")
    return names


@dataclass(frozen=True)
class Vocab:
    """Sorted distinct characters at ids 1..n; id 0 is the boundary token, never a character."""

    chars: tuple[str, ...]

    def __post_init__(self) -> None:
        if list(self.chars) != sorted(set(self.chars)) or any(len(c) != 1 or not c.isprintable() for c in self.chars):
            raise DataError("a vocabulary is a sorted list of distinct printable characters")

    @classmethod
    def from_names(cls, names: list[str]) -> Vocab:
        return cls(tuple(sorted(set("".join(names)))))

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    @functools.cached_property
    def _ids(self) -> dict[str, int]:
        return {ch: i for i, ch in enumerate(self.chars, start=1)}

    def encode(self, text: str) -> list[int]:
        missing = set(text) - self._ids.keys()
        if missing:
            raise DataError(f"characters not in the vocabulary: {''.join(sorted(missing))!r}")
        return list(map(self._ids.__getitem__, text))

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i - 1] for i in ids if i != BOUNDARY)


@dataclass(frozen=True)
class Splits:
    train: list[str]
    val: list[str]
    test: list[str]

    def get(self, name: str) -> list[str]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def split_names(names: list[str], seed: int) -> Splits:
    """Shuffle a copy with `random.Random(seed)` (= the reference's random.seed(42); shuffle)."""
    shuffled = list(names)
    random.Random(seed).shuffle(shuffled)
    n1, n2 = int(0.8 * len(shuffled)), int(0.9 * len(shuffled))
    splits = Splits(shuffled[:n1], shuffled[n1:n2], shuffled[n2:])
    if not (splits.train and splits.val and splits.test):
        raise DataError(f"{len(names)} names are too few for three non-empty 80/10/10 splits: use at least 6 names")
    return splits


def build_examples(names: list[str], vocab: Vocab, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every position of every name, end token included, in order: X (N, block_size), Y (N,).

    The reference slides a context window over each name in Python; the same windows are read
    here from one flat sequence in which each name is led by `block_size` boundary tokens:

        . . . e m m a .  . . . b o .     windows of block_size ids, each followed by its target
    """
    ids = iter(vocab.encode("".join(names)))  # every character of every name, in order
    lead = [BOUNDARY] * block_size
    flat: list[int] = []
    for name in names:
        flat += lead
        flat += itertools.islice(ids, len(name))
        flat.append(BOUNDARY)  # the end token
    seq = torch.tensor(flat, dtype=torch.long)
    targets = torch.tensor([len(name) + 1 for name in names], dtype=torch.long)  # per name: its characters and the end
    name_start = torch.cumsum(targets + block_size, 0) - targets - block_size  # where each name's lead begins
    within = torch.arange(int(targets.sum())) - torch.repeat_interleave(torch.cumsum(targets, 0) - targets, targets)
    window = torch.repeat_interleave(name_start, targets) + within  # (N,) first id of each context
    x = seq.unfold(0, block_size, 1)[window] if len(flat) >= block_size else seq[:0].reshape(0, block_size)
    return x, seq[window + block_size]


@dataclass(frozen=True)
class Dataset:
    """A names file made ready for one model: its vocabulary, splits and examples per split."""

    path: Path
    sha256: str
    names: list[str]
    vocab: Vocab
    splits: Splits
    split_seed: int
    block_size: int

    def examples(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return build_examples(self.splits.get(split), self.vocab, self.block_size)


def load_dataset(path: Path, split_seed: int, block_size: int, vocab: Vocab | None = None) -> Dataset:
    """Read and split a names file; `vocab` (from a checkpoint) must cover every character."""
    return dataset_from_bytes(path, read_file_bytes(path), split_seed, block_size, vocab)


def dataset_from_bytes(path: Path, raw: bytes, split_seed: int, block_size: int, vocab: Vocab | None) -> Dataset:
    """`load_dataset` for bytes already read (and hashed) by the caller."""
    names = parse_names(raw, str(path))
    found = Vocab.from_names(names)
    if vocab is None:
        vocab = found
    elif not set(found.chars) <= set(vocab.chars):
        extra = "".join(sorted(set(found.chars) - set(vocab.chars)))
        raise DataError(f"{path} has characters the model never saw: {extra!r}")
    try:
        splits = split_names(names, split_seed)
    except DataError as err:
        raise DataError(f"{path}: {err}") from None
    return Dataset(Path(path), hashlib.sha256(raw).hexdigest(), names, vocab, splits, split_seed, block_size)
