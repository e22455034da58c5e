"""Operator requests handed to a running daemon through files in the state directory.

With one writer per state directory (``state/lock.py``), a command that writes cannot
run beside ``klash-sync run`` as a second process. Instead it drops a request (the
action's name and arguments, when it was made, and the digest of the programme file it
was made for) into ``STATE_DIR/requests/``; the daemon, which looks there every
second, runs the very same action (``actions.py``) in its own context and writes the
outcome (the lines to print and the exit code) next to it; the command waits for that
and prints it. Files rather than a socket: nothing to authenticate beyond the state
directory's own permissions, which already guard everything the daemon writes, and it
works the same in a container and under systemd. The folder is 0700 and every file in
it 0600: an answer can carry a password (``accounts``), and it is removed once read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REQUESTS = "requests"
MAX_AGE = 300.0  # seconds: an older request is refused, not carried out
TAKE_WITHIN = 60.0  # seconds a live daemon may take to pick a request up
LONGEST = 3600.0  # seconds a command waits for the answer to a request the daemon took


@dataclass(frozen=True)
class Request:
    id: str
    action: str
    args: dict[str, Any] = field(default_factory=dict)
    made_at: float | None = None  # seconds since the epoch
    programme: str | None = None  # sha256 of the programme file's bytes


@dataclass(frozen=True)
class Answer:
    code: int
    lines: list[tuple[str, str]]  # (stream, text), stream "out" or "err"


@dataclass(frozen=True)
class Unanswered:
    """Why no answer came: ``taken`` says whether the daemon had picked the request up."""

    taken: bool
    daemon_gone: bool


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def folder(state_dir: Path) -> Path:
    return state_dir / REQUESTS


def _write_private(path: Path, data: str) -> None:
    """Write ``path`` atomically, readable by its owner only."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(data)
    os.replace(tmp, path)


def submit(state_dir: Path, action: str, args: dict[str, Any], *, programme: str,
           now: float | None = None) -> str:
    """Write a request atomically; return its id."""
    where = folder(state_dir)
    where.mkdir(parents=True, exist_ok=True, mode=0o700)
    rid = uuid.uuid4().hex
    made_at = time.time() if now is None else now
    _write_private(where / f"{rid}.request", json.dumps(
        {"action": action, "args": args, "made_at": made_at, "programme": programme}))
    return rid


def wait(state_dir: Path, rid: str, *, daemon_alive: Callable[[], bool],
         poll: float = 0.2) -> Answer | Unanswered:
    """The daemon's answer to request ``rid``, or why there is none.

    A request nobody took within ``TAKE_WITHIN`` seconds, or whose daemon is gone before
    taking it, is withdrawn (so it can never run later); one the daemon took is waited
    for as long as that daemon lives (it answers even when it stops), up to ``LONGEST``.
    """
    where = folder(state_dir)
    request, taken, done = (where / f"{rid}.{suffix}" for suffix in ("request", "taken", "done"))
    start = time.monotonic()
    next_check = start + 1.0
    while True:
        if done.exists():
            with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
                data = json.loads(done.read_text(encoding="utf-8"))
                done.unlink(missing_ok=True)
                lines = [(str(s), str(t)) for s, t in data["lines"]]
                return Answer(int(data["code"]), lines)
        now = time.monotonic()
        if now >= next_check:
            next_check = now + 1.0
            alive = daemon_alive()
            if not (request.exists() or taken.exists() or done.exists()):
                return Unanswered(taken=True, daemon_gone=not alive)  # removed by someone
            if not taken.exists() and not done.exists():
                if (not alive or now - start > TAKE_WITHIN) and _withdraw(request):
                    return Unanswered(taken=False, daemon_gone=not alive)
            elif not alive and not done.exists():
                return Unanswered(taken=True, daemon_gone=True)
            if now - start > LONGEST:
                return Unanswered(taken=True, daemon_gone=False)
        time.sleep(poll)


def _withdraw(request: Path) -> bool:
    """Remove a request not yet taken; False if the daemon took it meanwhile."""
    try:
        request.unlink()
    except FileNotFoundError:
        return False
    return True


def take(state_dir: Path) -> list[Request]:
    """Requests waiting for the daemon (each is taken once: its file is renamed).

    An unreadable request comes back with an empty ``action``, to be answered as such.
    """
    where = folder(state_dir)
    found = []
    with contextlib.suppress(FileNotFoundError):
        for path in sorted(where.glob("*.request")):
            rid = path.name.removesuffix(".request")
            taken = path.with_name(f"{rid}.taken")
            try:
                path.replace(taken)
            except OSError:
                continue
            try:
                data = json.loads(taken.read_text(encoding="utf-8"))
                args = data.get("args") or {}
                made_at = data.get("made_at")
                found.append(Request(rid, str(data.get("action") or ""),
                                     args if isinstance(args, dict) else {},
                                     float(made_at) if isinstance(made_at, int | float) else None,
                                     str(data["programme"]) if data.get("programme") else None))
            except (OSError, ValueError, AttributeError):
                found.append(Request(rid, ""))
    return found


def answer(state_dir: Path, rid: str, code: int, lines: list[tuple[str, str]]) -> None:
    where = folder(state_dir)
    _write_private(where / f"{rid}.done", json.dumps({"code": code, "lines": lines}))
    with contextlib.suppress(OSError):
        os.unlink(where / f"{rid}.taken")


def sweep(state_dir: Path, older_than: float = 2 * MAX_AGE) -> None:
    """Remove answers nobody read (their command was killed) and leftovers, so an answer
    with a password in it does not stay on disk."""
    limit = time.time() - older_than
    with contextlib.suppress(FileNotFoundError):
        for path in folder(state_dir).iterdir():
            with contextlib.suppress(OSError):
                if path.name.endswith((".done", ".tmp")) and path.lstat().st_mtime < limit:
                    path.unlink()
