"""Names files, the vocabulary, the 80/10/10 split and the (context, next character) examples."""

from __future__ import annotations

import array
import functools
import hashlib
import os
import random
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from bnnames.errors import DataError
from bnnames.examples import BOUNDARY, Examples
from bnnames.runtime import available_memory

MAX_NAME_LENGTH = 256  # longer lines are not names: refusing them bounds memory and time
MAX_FILE_BYTES = 256 * 1024 * 1024
LOAD_BYTES_PER_BYTE = 16  # peak memory of loading a names file, per byte of it (measured: docs/big-files.md)
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
    stream cannot exhaust memory. A named pipe (FIFO) is opened without waiting for a writer
    (`_open_without_waiting`): one that nobody writes to yet is an error at once, not a hang.
    """
    path = Path(path)
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder, not a names file: pass a text file with one name a line")
    try:
        with _open_without_waiting(path) as handle:
            info = os.fstat(handle.fileno())
            size = info.st_size  # 0 for a pipe: checked after reading
            if size > MAX_FILE_BYTES:
                raise DataError(f"{path} is larger than {MAX_FILE_BYTES >> 20} MiB: is it really a list of names?")
            check_memory(path, size, available_memory())
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise DataError(
            f"names file {path} does not exist: pass the path of a text file with one name a line"
        ) from None
    except (OSError, ValueError) as err:  # ValueError: a path with a NUL byte (from a checkpoint)
        raise DataError(f"cannot read names file {path}: {getattr(err, 'strerror', None) or err}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise DataError(f"{path} is larger than {MAX_FILE_BYTES >> 20} MiB: is it really a list of names?")
    if not raw and stat.S_ISFIFO(info.st_mode):
        raise DataError(
            f"names file {path} is a pipe with nothing to read (no program writes to it): "
            "start the program that writes it first, or pass a regular file"
        )
    if not size:  # a pipe: its size is known now, before the names are parsed
        check_memory(path, len(raw), available_memory())
    return raw


def _open_without_waiting(path: Path) -> BinaryIO:
    """`path` opened for reading without waiting, then read as usual (blocking).

    A plain open() of a FIFO waits inside the C call for a writer, where no signal handler runs;
    opened non-blocking it returns at once (a FIFO with no writer then reads as empty), and the
    reads after it block as a plain file's do (docs/reliability.md, names files that are pipes).
    """
    flag = getattr(os, "O_NONBLOCK", 0)  # not on Windows, where no FIFO opens this way
    fd = os.open(path, os.O_RDONLY | flag)
    if flag:
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def check_memory(path: Path, size: int, available: int | None) -> None:
    """Refuse, in one line, a file that would need more memory than the machine has free,
    before loading it (rather than the kernel's out-of-memory killer ending the run partway)."""
    need = size * LOAD_BYTES_PER_BYTE
    if available is not None and need > available:
        raise DataError(
            f"{path} ({size / 2**20:.0f} MiB) needs about {need / 2**30:.1f} GiB of memory to load, but this "
            f"machine has {available / 2**30:.1f} GiB available: free some memory or use a smaller file"
        )


def parse_names(raw: bytes, source: str = "names file") -> list[str]:
    """Decode and check the bytes of a names file (kept separate from I/O so it can be fuzzed).

    The checks run line by line in C (`str.strip`, `str.isprintable`); only a file that fails
    one is read again in Python, to name its first bad line.
    """
    try:
        text = raw.decode("utf-8-sig")  # a leading byte-order mark is not part of the first name
    except UnicodeDecodeError as err:
        raise DataError(f"{source} is not UTF-8 text (bad byte at offset {err.start}): save it as UTF-8") from None
    lines = text.split("\n")
    names = [name for name in map(str.strip, lines) if name]  # strip also removes the '\r' of CRLF
    if not all(map(str.isprintable, names)) or max(map(len, names), default=0) > MAX_NAME_LENGTH:
        for number, line in enumerate(lines, start=1):
            _check_name(line.strip(), number, source)
    if not names:
        raise DataError(f"{source} holds no names: it needs one name a line")
    return names


def _check_name(name: str, number: int, source: str) -> None:
    """Raise the error of line `number` (stripped to `name`), if it has one."""
    bad = next((ch for ch in name if not ch.isprintable()), None)
    if bad is not None:
        hint = CONTROL_HINTS.get(bad, "this looks like a binary file, not a text file of names")
        raise DataError(f"{source} line {number} holds control character U+{ord(bad):04X}: {hint}")
    if len(name) > MAX_NAME_LENGTH:
        raise DataError(
            f"{source} line {number} is {len(name)} characters long (at most {MAX_NAME_LENGTH}): "
            "put one name on each line"
        )


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

    def id(self, ch: str) -> int:
        return self._ids[ch]

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


def shuffled_order(count: int, seed: int) -> torch.Tensor:
    """The order `random.Random(seed).shuffle` gives `count` items (the reference's random.seed(42); shuffle),
    int64 (count,).

    A shuffle's swaps depend only on the length, so shuffling indices says where each name goes;
    an `array` of them takes 8 bytes each (a list of ints ~36) and becomes a tensor without a copy.
    """
    order = array.array("q", range(count))
    random.Random(seed).shuffle(order)
    return torch.frombuffer(order, dtype=torch.int64) if count else torch.zeros(0, dtype=torch.int64)


def split_bounds(count: int, source: str | None = None) -> tuple[int, int]:
    """Where the 80/10/10 splits of `count` shuffled names end: train [:n1], val [n1:n2], test [n2:]."""
    n1, n2 = int(0.8 * count), int(0.9 * count)
    if not 0 < n1 < n2 < count:
        where = f"{source}: " if source else ""
        raise DataError(f"{where}{count} names are too few for three non-empty 80/10/10 splits: use at least 6 names")
    return n1, n2


def split_names(names: list[str], seed: int) -> Splits:
    """The names in shuffled order, cut 80/10/10."""
    shuffled = [names[i] for i in shuffled_order(len(names), seed).tolist()]
    n1, n2 = split_bounds(len(names))
    return Splits(shuffled[:n1], shuffled[n1:n2], shuffled[n2:])


def token_dtype(vocab: Vocab) -> type[np.integer]:
    """The narrowest integer type that holds every id: one byte a character up to 255 characters."""
    return np.uint8 if vocab.size <= 256 else np.int16 if vocab.size <= 2**15 else np.int32


@dataclass(frozen=True, eq=False)
class Dataset:
    """A names file made ready for one model: its vocabulary, its token stream and its splits.

    Memory follows the file's characters: `tokens` holds one narrow id per character and per
    name end, `starts` and `order` one int64 each per name; examples are gathered when drawn.
    """

    path: Path
    sha256: str
    vocab: Vocab
    split_seed: int
    block_size: int
    tokens: torch.Tensor  # (C,) every name's ids followed by BOUNDARY, in file order
    starts: torch.Tensor  # (names + 1,) int64: name k is tokens[starts[k]:starts[k + 1]]
    order: torch.Tensor  # (names,) int64: the shuffled order; train = order[:n1], val, test

    def split(self, name: str) -> torch.Tensor:
        """The indices (in file order) of a split's names, in split order."""
        n1, n2 = split_bounds(len(self.order))
        return {"train": self.order[:n1], "val": self.order[n1:n2], "test": self.order[n2:]}[name]

    def stream(self, split: str) -> Examples:
        """The split's examples, gathered on demand (what the verbs use)."""
        return Examples.of(self.tokens, self.starts, self.split(split), self.block_size)

    def examples(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split as tensors, x (N, block_size) and y (N,): for small files and tests."""
        stream = self.stream(split)
        return stream.gather(torch.arange(len(stream)))

    @property
    def names(self) -> list[str]:
        """Every name, in file order, decoded again (for `sample --novel`)."""
        codepoints = np.array([ord("\n"), *map(ord, self.vocab.chars)], dtype=np.int32)  # id -> code point
        text = codepoints[self.tokens.numpy()].tobytes().decode("utf-32-le")
        return text.split("\n")[:-1]

    @property
    def splits(self) -> Splits:
        names = self.names
        train, val, test = ([names[i] for i in self.split(s).tolist()] for s in ("train", "val", "test"))
        return Splits(train, val, test)


def name_examples(names: list[str], vocab: Vocab, block_size: int) -> Examples:
    """The examples of `names`, in order: each name's characters, then its end token (`bnnames score`)."""
    tokens = torch.tensor([i for name in names for i in (*vocab.encode(name), BOUNDARY)], dtype=torch.long)
    starts = torch.cumsum(torch.tensor([0] + [len(name) + 1 for name in names]), 0)  # (M + 1,)
    return Examples.of(tokens, starts, torch.arange(len(names)), block_size)


def load_dataset(path: Path, split_seed: int, block_size: int, vocab: Vocab | None = None) -> Dataset:
    """Read and split a names file; `vocab` (from a checkpoint) must cover every character."""
    return dataset_from_bytes(path, read_file_bytes(path), split_seed, block_size, vocab)


def dataset_from_bytes(path: Path, raw: bytes, split_seed: int, block_size: int, vocab: Vocab | None) -> Dataset:
    """`load_dataset` for bytes already read (and hashed) by the caller."""
    names = parse_names(raw, str(path))
    split_bounds(len(names), str(path))
    # every name followed by "\n", as code points (C,): vectorised from here on
    codepoints = np.frombuffer(("\n".join(names) + "\n").encode("utf-32-le"), dtype=np.int32)
    count = len(names)
    del names  # ~60 bytes a name as Python strings: the token stream below replaces them
    seen = np.zeros(int(codepoints.max()) + 1, dtype=bool)
    seen[codepoints] = True
    seen[ord("\n")] = False  # the names' ends, not a character
    found = Vocab(tuple(map(chr, np.flatnonzero(seen))))
    if vocab is None:
        vocab = found
    elif not set(found.chars) <= set(vocab.chars):
        extra = "".join(sorted(set(found.chars) - set(vocab.chars)))
        raise DataError(f"{path} has characters the model never saw: {extra!r}")
    ids = np.zeros(len(seen), dtype=token_dtype(vocab))  # code point -> id; "\n" -> BOUNDARY
    ids[[ord(ch) for ch in found.chars]] = [vocab.id(ch) for ch in found.chars]
    tokens = torch.from_numpy(ids[codepoints])
    starts = torch.from_numpy(np.concatenate([[0], np.flatnonzero(codepoints == ord("\n")) + 1]))
    order = shuffled_order(count, split_seed)
    return Dataset(Path(path), hashlib.sha256(raw).hexdigest(), vocab, split_seed, block_size, tokens, starts, order)
