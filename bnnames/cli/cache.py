"""`bnnames cache`: show the compiled-step cache (folder, size, entries), or empty it."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from bnnames.cli.common import note, one_line_errors, stdout


@one_line_errors
def cache(
    ctx: typer.Context,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove every compiled step (each is compiled again when next needed).")
    ] = False,
) -> None:
    """Show the compiled-step cache: its folder, its size against its bound, and each entry, least
    recently used first (the first to go when the cache is full).

    The folder is $BNNAMES_CACHE_DIR/compiled, else the platform's cache folder (~/.cache/bnnames).
    """
    from bnnames.training.fast import packages
    from bnnames.training.fast.cache import untrusted_note

    out = stdout()
    if clear:
        held = packages.clear(os.environ)
        out.print(f"cleared the compile cache {held.folder}: {len(held.entries)} entries, {_mb(held.size)} removed")
        return
    shown = packages.view(os.environ)
    out.print(f"compile cache: {shown.folder}")
    out.print(f"size: {_mb(shown.size)} of {_mb(shown.limit)} (least recently used entries go first)")
    steps = [entry for entry in shown.entries if entry.key]
    others = [entry for entry in shown.entries if not entry.key]
    for entry in steps:
        out.print(f"  {entry.key[:12]}  {_mb(entry.size):>8}  used {packages.age(entry):<12}  {entry.about}")
    if not steps:
        out.print("  no compiled steps")
    if others:
        size = sum(entry.size for entry in others)
        out.print(f"  torch's own files of past compiles ({len(others)}): {_mb(size)} (they age out too)")
    if shown.untrusted is not None:
        note(untrusted_note(shown.untrusted))


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
