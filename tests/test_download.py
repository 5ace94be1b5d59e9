"""The standard dataset download, against a local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bnnames.cli import make_app
from bnnames.download import STANDARD_SHA256, URL_ENV


@pytest.fixture
def server(tmp_path, names_path):
    """Serve a folder holding the real names.txt and a wrong one on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(names_path, root / "names.txt")
    (root / "wrong.txt").write_text("anna\nbob\n" * 10)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _train(tmp_path: Path, monkeypatch, url: str):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(URL_ENV, url)
    return CliRunner().invoke(make_app(), ["train", "--steps", "20", "--n-hidden", "8"])


def test_missing_default_data_is_downloaded_and_verified(tmp_path, monkeypatch, server):
    result = _train(tmp_path, monkeypatch, f"{server}/names.txt")
    assert result.exit_code == 0, result.stderr
    data = tmp_path / "data" / "names.txt"
    assert hashlib.sha256(data.read_bytes()).hexdigest() == STANDARD_SHA256
    assert not [p for p in data.parent.iterdir() if p.name != "names.txt"]  # no temporary left over


def test_a_wrong_file_is_refused_and_nothing_is_written(tmp_path, monkeypatch, server):
    result = _train(tmp_path, monkeypatch, f"{server}/wrong.txt")
    assert result.exit_code == 1 and "not the standard names dataset" in result.stderr
    assert not (tmp_path / "data" / "names.txt").exists()


def test_offline_error_says_how_to_supply_the_file(tmp_path, monkeypatch, server):
    result = _train(tmp_path, monkeypatch, f"{server}/missing.txt")
    assert result.exit_code == 1
    assert "cannot download" in result.stderr and "pass its path" in result.stderr
    result = _train(tmp_path, monkeypatch, "http://127.0.0.1:9/names.txt")  # nothing listens on port 9
    assert result.exit_code == 1 and "cannot download" in result.stderr
