"""`bnnames --help`, `--version` and option errors answer without importing torch (~1 s)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
sys.argv = ["bnnames", *sys.argv[1:]]
from bnnames.cli import main
try:
    main()
except SystemExit as exit:
    code = exit.code
print("torch imported:", "torch" in sys.modules, "exit:", code, file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv, code",
    [
        (["--help"], 0),
        (["--version"], 0),
        (["train", "--help"], 0),
        (["sample", "--help"], 0),
        (["train", "--steps", "many"], 2),
        (["eval", "--no-such-option"], 2),
        ([], 2),
    ],
)
def test_help_version_and_usage_errors_do_not_import_torch(argv: list[str], code: int) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], check=False, capture_output=True, text=True, timeout=60)
    assert done.stderr.strip().splitlines()[-1] == f"torch imported: False exit: {code}", done.stderr
