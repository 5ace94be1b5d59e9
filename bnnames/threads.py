"""Thread counts for one piece of work, restored afterwards (library callers keep theirs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

# Every bnnames workload is made of small ops (a training step is ~2.4 MFLOP; eval and sampling
# run a few thousand distinct contexts). Measured on 2 cores: a second thread made the training
# step, eval and sampling slower, and many times slower while another process used the other core.
THREADS = 1


@contextmanager
def num_threads(count: int) -> Iterator[None]:
    """Run the block (or decorated function) with `count` intra-op threads, then restore the caller's."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
