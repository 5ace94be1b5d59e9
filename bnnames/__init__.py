"""bnnames: character-level language models of names with Batch Normalization.

    import bnnames
    model = bnnames.train("names.txt", "names.safetensors", steps=20_000)  # or bnnames.load(path)
    model.sample(10, suffix="iel", seed=1)

Importing the package is cheap on purpose: torch is imported only by the modules that
compute, so `bnnames --help` answers instantly; `train`, `load` and `Model` (bnnames.api)
are imported when first used.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Model", "load", "train"]


def __getattr__(name: str) -> Any:
    """`bnnames.train`, `bnnames.load`, `bnnames.Model`: the Python API, imported on first use."""
    if name in __all__:
        from bnnames import api

        return getattr(api, name)
    raise AttributeError(f"module 'bnnames' has no attribute {name!r}")
