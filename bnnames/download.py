"""Fetch the standard dataset (makemore's names.txt) when the default data file is missing."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from bnnames.errors import DataError
from bnnames.storage.files import atomic_write_bytes

STANDARD_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
STANDARD_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
URL_ENV = "BNNAMES_DATA_URL"  # overrides STANDARD_URL (a mirror, or a local server in tests)
MAX_BYTES = 16 * 1024 * 1024  # the real file is 228 KB; anything far bigger is not it


def fetch_standard_dataset(path: Path, url: str, timeout: float = 30.0) -> None:
    """Download `url` to `path`, verify the standard SHA-256, then write it atomically."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read(MAX_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(
            f"cannot download the standard names dataset from {url} ({reason}): "
            f"put a names file at {path}, pass its path to `bnnames train`, or set {URL_ENV} to a mirror"
        ) from None
    digest = hashlib.sha256(payload).hexdigest()
    if len(payload) > MAX_BYTES or digest != STANDARD_SHA256:
        raise DataError(
            f"the file downloaded from {url} is not the standard names dataset (SHA-256 {digest[:16]}...): "
            f"nothing was written; check {URL_ENV} or supply the file yourself"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, payload)
    except OSError as err:
        raise DataError(f"cannot write the downloaded dataset to {path}: {err.strerror or err}") from None
