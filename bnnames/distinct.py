"""The distinct contexts of a split: 182,625 training examples hold only 5,438 different ones.

In eval mode a model maps a context to the same logits whatever else is in the batch, so
running each distinct context once, and weighting it by how often it occurs, gives the losses
and BatchNorm statistics of the whole split for a fraction of the work.
"""

from __future__ import annotations

import torch


def distinct_contexts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (N, T) ids -> contexts (U, T), inverse (N,) with x == contexts[inverse], counts (U,)."""
    base = int(x.max()) + 1 if x.numel() else 1
    width = x.shape[1]
    if base**width >= 2**62:  # too many possible contexts for one int64 key: sort the rows
        return torch.unique(x, dim=0, return_inverse=True, return_counts=True)
    powers = base ** torch.arange(width - 1, -1, -1, device=x.device)  # (T,)
    keys, inverse, counts = torch.unique((x * powers).sum(1), return_inverse=True, return_counts=True)
    return keys[:, None] // powers % base, inverse, counts  # each key read back as its T digits
