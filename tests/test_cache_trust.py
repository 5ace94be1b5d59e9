"""The compile cache is native code: only this user's private, verified packages are ever loaded.

The compile itself is stubbed (a fake package, a fake loader that records what it was handed),
so these tests take milliseconds; the planted package is real: a shared library whose constructor
writes a marker file, packed as the AOTI loader expects (and shown to run when handed to it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from bnnames.config import ModelConfig
from bnnames.model import build_model
from bnnames.training.fast import compiled, packages
from bnnames.training.fast.cache import CACHE_ENV, make_private, untrusted_because
from bnnames.training.fast.plan import plan_of, state_of

KEY = "0123456789abcdef0123456789abcdef"
PLANT = r"""
#include <stdio.h>
__attribute__((constructor)) static void plant(void) {
    FILE *f = fopen("MARKER_PATH", "w");
    if (f) { fputs("ran\n", f); fclose(f); }
}
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    """A cache root of this test's own; the package key fixed to KEY; the compile stubbed."""
    root = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(root))
    monkeypatch.setattr(compiled, "step_key", lambda *args: KEY)
    monkeypatch.setattr(compiled, "_export", lambda *args: (None, True))

    def compile_stub(exported, package_path, inductor_configs):  # type: ignore[no-untyped-def]
        Path(package_path).write_bytes(b"freshly compiled")
        return package_path

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", compile_stub)
    return root


@pytest.fixture
def loads(monkeypatch) -> list[tuple[Path, bytes, int]]:
    """What the AOTI loader was handed: (path, its bytes, its folder's mode) for each load. The
    stubbed compile's package loads as a fake; anything else goes to torch's real loader (dlopen)."""
    handed: list[tuple[Path, bytes, int]] = []
    real = compiled._load

    def load(path: Path):  # type: ignore[no-untyped-def]
        handed.append((Path(path), Path(path).read_bytes(), Path(path).parent.stat().st_mode & 0o777))
        return (lambda inputs: [torch.tensor(0.0)]) if handed[-1][1] == b"freshly compiled" else real(path)

    monkeypatch.setattr(compiled, "_load", load)
    return handed


def _step(notes: list[str]):  # type: ignore[no-untyped-def]
    model = build_model(ModelConfig(n_embd=3, n_hidden=8), 27)
    params, buffers = state_of(model)
    batch = (torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long), ())
    return compiled.native_step(plan_of(model), params, buffers, batch, 0.0, notes.append)


def _packages(root: Path) -> Path:
    return root / "compiled" / compiled.PACKAGES


def planted_package(tmp_path: Path) -> tuple[Path, Path]:
    """A .pt2 whose library writes a marker file when loaded: (package, marker)."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (cc) to build the planted library with")
    marker = tmp_path / "MARKER"
    (tmp_path / "plant.c").write_text(PLANT.replace("MARKER_PATH", str(marker)))
    subprocess.run(["cc", "-shared", "-fPIC", "-o", tmp_path / "plant.so", tmp_path / "plant.c"], check=True)
    package = tmp_path / "planted.pt2"
    with zipfile.ZipFile(package, "w") as z:
        for name, text in (("archive_format", "pt2"), ("archive_version", "0"), ("byteorder", "little")):
            z.writestr(f"step/{name}", text)
        z.writestr("step/.data/version", "6\n")
        z.write(tmp_path / "plant.so", "step/data/aotinductor/model/planted.wrapper.so")
        z.writestr("step/data/aotinductor/model/planted.wrapper_metadata.json", '{"AOTI_DEVICE_KEY": "cpu"}')
    return package, marker


def _plant(root: Path, source: Path, record: bool | bytes = False) -> Path:
    """Put `source` under KEY in the cache; with a record of its digest (True), of these bytes, or none."""
    make_private(_packages(root), root)
    path = _packages(root) / f"{KEY}.pt2"
    shutil.copy(source, path)
    if record is not False:
        data = source.read_bytes() if record is True else record
        digest = hashlib.sha256(data).hexdigest()
        packages.record_path(path).write_text(json.dumps({"sha256": digest, "size": len(data), "about": ""}))
    return path


def test_the_planted_package_runs_its_code_when_the_loader_is_handed_it(tmp_path: Path) -> None:
    """The plant is real: given to torch's loader directly (in a child process), its code runs."""
    package, marker = planted_package(tmp_path)
    load = f"import torch; torch._C._aoti.AOTIModelPackageLoader({str(package)!r}, 'model', False, 1, -1)"
    subprocess.run([sys.executable, "-c", load], capture_output=True)
    assert marker.read_text() == "ran\n"


@pytest.mark.parametrize("record", ["none", "wrong digest"])
def test_a_planted_package_never_runs_and_is_replaced(tmp_path: Path, cache: Path, loads, record: str) -> None:
    package, marker = planted_package(tmp_path)
    path = _plant(cache, package, False if record == "none" else b"other bytes")
    notes: list[str] = []
    _step(notes)
    assert not marker.exists()
    said = "has no valid record" if record == "none" else "does not match its recorded digest"
    assert any(said in n and "removed, compiling it again" in n for n in notes), notes
    assert [data for _, data, _ in loads] == [b"freshly compiled"]  # the fresh compile's, not the plant's
    assert path.read_bytes() == b"freshly compiled"
    digest = json.loads(packages.record_path(path).read_text())["sha256"]
    assert digest == hashlib.sha256(b"freshly compiled").hexdigest()


@pytest.mark.parametrize("where", ["root", "compiled", "steps", "package", "record"])
def test_an_insecure_folder_or_entry_is_never_loaded(tmp_path: Path, cache: Path, loads, where: str) -> None:
    """Even a package with a matching record: anyone could have written both."""
    package, marker = planted_package(tmp_path)
    path = _plant(cache, package, record=True)
    insecure = {
        "root": cache,
        "compiled": cache / "compiled",
        "steps": path.parent,
        "package": path,
        "record": packages.record_path(path),
    }[where]
    insecure.chmod(0o777 if insecure.is_dir() else 0o666)
    notes: list[str] = []
    _step(notes)
    assert not marker.exists()
    note = next(n for n in notes if "not loading compiled steps" in n)
    assert f"{insecure} can be written by anyone" in note
    assert f"chmod {700 if insecure.is_dir() else 600} {insecure}" in note and "bnnames cache --clear" in note
    assert "private temporary folder" in note
    assert path.read_bytes() == package.read_bytes()  # the user's files are left for the user to judge
    assert len(loads) == 1 and cache not in loads[0][0].parents  # compiled into a temporary folder


def test_another_owner_is_never_trusted(tmp_path: Path, monkeypatch) -> None:
    make_private(tmp_path / "root" / "a", tmp_path / "root")
    monkeypatch.setattr(os, "getuid", lambda: os.stat(tmp_path).st_uid + 1)
    found = untrusted_because(tmp_path / "root" / "a", tmp_path / "root")
    assert found is not None and found[0] == tmp_path / "root" and "is owned by user" in found[1]


def test_a_tampered_entry_is_removed_and_recompiled(cache: Path, loads) -> None:
    notes: list[str] = []
    _step(notes)  # compiles (stubbed) and records the digest
    path = _packages(cache) / f"{KEY}.pt2"
    assert loads[-1][1] == path.read_bytes() == b"freshly compiled"
    path.write_bytes(b"freshly compiled, then changed")
    notes.clear()
    _step(notes)
    assert any("does not match its recorded digest" in n for n in notes), notes
    assert any("compiling the training step" in n for n in notes)
    assert path.read_bytes() == b"freshly compiled"


def test_a_verified_package_is_loaded_from_a_private_copy_of_the_checked_bytes(cache: Path, loads) -> None:
    _step([])
    notes: list[str] = []
    _step(notes)  # loads
    assert notes == []
    copy, data, mode = loads[-1]
    assert data == b"freshly compiled"
    assert copy.parent != _packages(cache) and mode == 0o700
    assert not copy.exists()  # removed once loaded (the loader extracts what it needs)


def test_new_cache_folders_are_private(cache: Path, loads) -> None:
    _step([])
    for folder in (cache, cache / "compiled", _packages(cache)):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    assert (_packages(cache) / f"{KEY}.pt2").stat().st_mode & 0o777 == 0o600
