"""Shared fixtures: the standard dataset (read from ../shared, never copied) and small files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

STANDARD_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tests call the library directly, as bnnames' own commands do, on one intra-op thread:
    on 2 shared cores a second thread made a 300-step test ten times slower (3 s -> 34 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def names_path() -> Path:
    """The standard 32,033-name dataset: $BNNAMES_TEST_DATA or ../shared/data/names.txt."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "names.txt"
    path = Path(os.environ.get("BNNAMES_TEST_DATA", default))
    if not path.exists():
        pytest.fail(f"the standard dataset is missing at {path}: set BNNAMES_TEST_DATA to names.txt")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == STANDARD_SHA256
    return path


@pytest.fixture
def small_names(tmp_path: Path) -> Path:
    """A tiny names file with capitals, accents, spaces, dots and apostrophes."""
    names = [
        "Émile",
        "Zoë",
        "Anne-Marie",
        "O'Brien",
        "J. R.",
        "de la Cruz",
        "Ana",
        "Bo",
        "Åsa",
        "Lou",
        "Mary Ann",
        "St. John",
        "Chloé",
        "D'Angelo",
        "Renée",
        "Ian",
        "Eve",
        "Ola",
        "Noé",
        "Al",
    ] * 3
    path = tmp_path / "names.txt"
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    return path
