"""Printing: the one place klash-sync writes to standard output and standard error.

Everything a command has to say reaches the terminal through here: the lines of an
action's ``Outcome`` (tagged for standard output or standard error, printed as they
come), notes on standard error, and a feed's bytes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable


def echo(stream: str, text: str) -> None:
    """One line of an ``Outcome``: ``stream`` is "out" or "err"."""
    print(text, file=sys.stderr if stream == "err" else sys.stdout, flush=True)


def show(lines: Iterable[tuple[str, str]]) -> None:
    for stream, text in lines:
        echo(stream, text)


def say(text: str = "") -> None:
    print(text, flush=True)


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def write_bytes(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


def terminal() -> bool:
    return sys.stdout.isatty()
