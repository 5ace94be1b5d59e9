"""Big files (issue 14): examples gathered from the token stream are the notebook's rows, whole-split
passes count the same rows, and a file too big for the machine is refused before loading."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from bnnames.config import ModelConfig
from bnnames.data import BOUNDARY, Vocab, check_memory, load_dataset, read_names, shuffled_order, split_names
from bnnames.errors import DataError
from bnnames.evaluate import split_loss
from bnnames.examples import ExampleTensors
from bnnames.inference import DENSE, count_rows
from bnnames.model import create_model
from bnnames.runtime import available_memory


def notebook_examples(names: list[str], vocab: Vocab, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The notebook's `build_dataset`, transcribed: a context window slid over each name (the oracle)."""
    xs, ys = [], []
    for name in names:
        context = [BOUNDARY] * block_size
        for ix in vocab.encode(name) + [BOUNDARY]:
            xs.append(context)
            ys.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(xs, dtype=torch.long).reshape(-1, block_size), torch.tensor(ys, dtype=torch.long)


@pytest.mark.parametrize("block_size", [1, 3, 8])
def test_every_split_is_the_notebook_construction_row_for_row(names_path, block_size: int) -> None:
    data = load_dataset(names_path, 42, block_size)
    reference = split_names(read_names(names_path), 42)  # shuffles the names themselves, as the notebook
    for split in ("train", "val", "test"):
        x, y = data.examples(split)
        ref_x, ref_y = notebook_examples(reference.get(split), data.vocab, block_size)
        assert torch.equal(x, ref_x) and torch.equal(y, ref_y), split


def test_gathered_batches_and_chunks_are_the_rows_of_the_whole_split(names_path) -> None:
    data = load_dataset(names_path, 42, 3)
    stream = data.stream("val")
    x, y = data.examples("val")
    ix = torch.randint(0, len(stream), (5000,), generator=torch.Generator().manual_seed(0))  # repeats too
    bx, by = stream.gather(ix)
    assert torch.equal(bx, x[ix]) and torch.equal(by, y[ix]) and bx.dtype == by.dtype == torch.long
    chunks = list(stream.chunks(1000))
    assert len(chunks) > 10
    assert torch.equal(torch.cat([c for c, _ in chunks]), x) and torch.equal(torch.cat([t for _, t in chunks]), y)


def test_unicode_wide_vocabularies_use_wider_ids_and_decode_back(tmp_path) -> None:
    rng = random.Random(3)
    alphabet = [chr(0x4E00 + i) for i in range(400)] + list("ab é")  # 404 symbols: past one byte
    names = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))).strip() or "a" for _ in range(300)]
    path = tmp_path / "wide.txt"
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    data = load_dataset(path, 7, 4)
    assert data.tokens.dtype == torch.int16 and data.vocab == Vocab.from_names(names)
    assert data.names == names
    reference = split_names(names, 7)
    for split in ("train", "val", "test"):
        x, y = data.examples(split)
        ref_x, ref_y = notebook_examples(reference.get(split), data.vocab, 4)
        assert torch.equal(x, ref_x) and torch.equal(y, ref_y) and data.splits.get(split) == reference.get(split)


def test_the_split_order_is_random_shuffle() -> None:
    for count in (0, 1, 2, 10, 1001):
        expected = list(range(count))
        random.Random(42).shuffle(expected)
        assert shuffled_order(count, 42).tolist() == expected


@pytest.mark.parametrize("vocab", [9, 300], ids=["dense", "sorted"])
def test_count_rows_is_a_direct_count_of_the_distinct_rows(vocab: int) -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, vocab, (3000, 3), generator=g), torch.randint(0, vocab, (3000,), generator=g)
    x[1500:] = x[:1500]  # many repeated contexts
    assert (vocab**4 <= DENSE) == (vocab == 9)  # the two counting paths
    for targets in (False, True):
        rows = torch.cat([x, y[:, None]], 1) if targets else x
        expected, counts = torch.unique(rows, dim=0, return_counts=True)
        got, got_counts = count_rows(ExampleTensors(x, y), targets)
        assert torch.equal(got, expected) and torch.equal(got_counts, counts)


def test_the_loss_of_a_stream_is_the_direct_cross_entropy(names_path) -> None:
    data = load_dataset(names_path, 42, 3)
    model = create_model(ModelConfig(n_hidden=30), data.vocab.size, torch.Generator().manual_seed(0))
    x, y = data.examples("val")
    model.eval()
    with torch.inference_mode():
        direct = F.cross_entropy(model(x).double(), y).item()
    assert split_loss(model, data.stream("val")) == split_loss(model, x, y) == pytest.approx(direct, abs=1e-5)


def test_a_file_too_big_for_the_free_memory_is_refused_in_one_line(tmp_path) -> None:
    check_memory(tmp_path / "names.txt", 100 << 20, None)  # unknown free memory: no refusal
    check_memory(tmp_path / "names.txt", 100 << 20, 4 << 30)
    with pytest.raises(DataError, match=r"names.txt \(100 MiB\) needs about 1.6 GiB .* has 1.0 GiB available") as err:
        check_memory(tmp_path / "names.txt", 100 << 20, 1 << 30)
    assert "\n" not in str(err.value)


def test_available_memory_reads_meminfo(tmp_path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n")
    assert available_memory(meminfo) == 2048 * 1024
    meminfo.write_text("MemTotal: 5 kB\n")
    assert available_memory(meminfo) is None and available_memory(tmp_path / "absent") is None
