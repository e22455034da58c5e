"""RESULTS.md holds one block per benchmark, between its own markers: a run replaces its
block and leaves the others as they are."""

from __future__ import annotations

from pathlib import Path


def write_block(path: Path, begin: str, end: str, block: str) -> None:
    """Put ``block`` (which starts with ``begin`` and ends with ``end``) in place of the
    previous one in ``path``, or append it."""
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)
