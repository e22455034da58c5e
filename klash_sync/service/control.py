"""Operator requests handed to a running daemon through files in the state directory.

With one writer per state directory (``lock.py``), the two operator actions that
need a writer, confirming a mass delete and purging a mentor's calendar, cannot
run beside the daemon as a second process. Instead the command drops a request
file into ``STATE_DIR/requests/``, the daemon (which polls that folder every
second) carries it out with its own syncer, and writes the outcome next to it;
the command waits for that and prints it. Files rather than a socket: nothing to
authenticate beyond the state directory's own permissions, which already guard
everything the daemon writes, and it works the same in a container and under systemd.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REQUESTS = "requests"


@dataclass
class Request:
    id: str
    action: str  # "sync" (with allow_mass_delete) | "purge"
    mentor: str | None = None
    lines: list[str] = field(default_factory=list)
    ok: bool = True


def folder(state_dir: Path) -> Path:
    return state_dir / REQUESTS


def submit(state_dir: Path, action: str, mentor: str | None = None) -> str:
    """Write a request atomically; return its id."""
    where = folder(state_dir)
    where.mkdir(parents=True, exist_ok=True, mode=0o700)
    rid = uuid.uuid4().hex
    tmp = where / f".{rid}.tmp"
    tmp.write_text(json.dumps({"action": action, "mentor": mentor}), encoding="utf-8")
    tmp.replace(where / f"{rid}.request")
    return rid


def wait(state_dir: Path, rid: str, timeout: float) -> dict[str, Any] | None:
    """The daemon's answer to request ``rid``, or None after ``timeout`` seconds."""
    done = folder(state_dir) / f"{rid}.done"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done.exists():
            with contextlib.suppress(OSError, ValueError):
                answer: dict[str, Any] = json.loads(done.read_text(encoding="utf-8"))
                done.unlink(missing_ok=True)
                return answer
        time.sleep(0.2)
    return None


def take(state_dir: Path) -> list[Request]:
    """Requests waiting for the daemon (each is taken once: its file is renamed)."""
    where = folder(state_dir)
    found = []
    with contextlib.suppress(FileNotFoundError):
        for path in sorted(where.glob("*.request")):
            rid = path.name.removesuffix(".request")
            taken = path.with_name(f"{rid}.taken")
            try:
                path.replace(taken)
                data = json.loads(taken.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            found.append(Request(rid, str(data.get("action")), data.get("mentor")))
    return found


def answer(state_dir: Path, request: Request) -> None:
    where = folder(state_dir)
    tmp = where / f".{request.id}.done.tmp"
    tmp.write_text(json.dumps({"ok": request.ok, "lines": request.lines}), encoding="utf-8")
    tmp.replace(where / f"{request.id}.done")
    with contextlib.suppress(OSError):
        os.unlink(where / f"{request.id}.taken")
