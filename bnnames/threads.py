"""Thread counts for one piece of work, restored afterwards (library callers keep theirs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

TRAIN_THREADS = 1  # the training step's ops are too small to split: a second thread only adds sync


@contextmanager
def num_threads(count: int) -> Iterator[None]:
    """Run the block with `count` intra-op threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
