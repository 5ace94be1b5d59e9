"""Names files, vocabulary, split and examples: the rules of the reference, checked directly."""

from __future__ import annotations

import random
import re

import pytest
import torch

from bnnames.data import BOUNDARY, Vocab, load_dataset, parse_names, read_names, split_names
from bnnames.errors import DataError
from bnnames.examples import Examples


def test_reading_strips_skips_blank_lines_accepts_crlf_and_keeps_duplicates():
    raw = "\ufeffanna\r\n  bob \r\n\r\n\nanna\n\t\nÉmile\nO'Neil\nJ. R.\n".encode()
    assert parse_names(raw) == ["anna", "bob", "anna", "Émile", "O'Neil", "J. R."]


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"anna\x00bob\n", "control character U+0000"),
        (b"\xff\xfeab\n", "not UTF-8"),
        (b"\n \n\n", "holds no names"),
        (b"", "holds no names"),
        (("x" * 300 + "\n").encode(), "300 characters long"),
    ],
)
def test_bad_bytes_are_refused_with_a_clear_message(raw, message):
    with pytest.raises(DataError, match=re.escape(message)):
        parse_names(raw)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_names(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="is a folder"):
        read_names(tmp_path)


def test_vocabulary_is_sorted_characters_after_the_boundary_token():
    vocab = Vocab.from_names(["bob", "Ada", "a.b"])
    assert vocab.chars == (".", "A", "a", "b", "d", "o")
    assert vocab.size == 7
    assert vocab.encode("ab.") == [3, 4, 1]  # '.' is a character here, not the boundary
    assert BOUNDARY == 0 and vocab.decode([3, 4, 1, BOUNDARY]) == "ab."
    with pytest.raises(DataError, match="not in the vocabulary"):
        vocab.encode("z")


def test_split_equals_the_reference_shuffle(names_path):
    names = read_names(names_path)
    splits = split_names(names, 42)
    reference = list(names)
    random.seed(42)  # the notebook: random.seed(42); random.shuffle(words); 80% / 10% / 10%
    random.shuffle(reference)
    n1, n2 = int(0.8 * len(reference)), int(0.9 * len(reference))
    assert (splits.train, splits.val, splits.test) == (reference[:n1], reference[n1:n2], reference[n2:])
    assert len(names) == 32033


def test_too_few_names_for_three_splits():
    with pytest.raises(DataError, match="too few"):
        split_names(["a", "b", "c"], 42)
    assert all(split_names(list("abcdefghij"), 42).get(s) for s in ("train", "val", "test"))


def test_examples_match_the_reference_construction():
    vocab = Vocab.from_names(["emma", "bo"])
    tokens = torch.tensor(vocab.encode("emma") + [BOUNDARY] + vocab.encode("bo") + [BOUNDARY], dtype=torch.uint8)
    x, y = Examples.of(tokens, torch.tensor([0, 5, 8]), torch.tensor([0, 1]), block_size=3).gather(torch.arange(8))
    e, m, a, b, o = (vocab.encode(c)[0] for c in "emaba"[:3] + "bo")
    assert x.tolist() == [[0, 0, 0], [0, 0, e], [0, e, m], [e, m, m], [m, m, a], [0, 0, 0], [0, 0, b], [0, b, o]]
    assert y.tolist() == [e, m, m, a, 0, b, o, 0]
    assert x.dtype == y.dtype == torch.long


def test_standard_dataset_sizes(names_path):
    data = load_dataset(names_path, split_seed=42, block_size=3)
    sizes = [data.examples(s)[0].shape[0] for s in ("train", "val", "test")]
    assert sizes == [182625, 22655, 22866]  # the notebook's printed shapes
    assert data.vocab.size == 27


def test_a_checkpoint_vocabulary_must_cover_the_file(small_names):
    with pytest.raises(DataError, match="never saw"):
        load_dataset(small_names, 42, 3, vocab=Vocab(("a", "b")))
