"""Operator requests handed to a running daemon through files in the state directory.

With one writer per state directory (``state/lock.py``), a command that writes cannot
run beside ``klash-sync run`` as a second process. Instead it drops a request (the
action's name and arguments, when it was made, and the digest of the programme file it
was made for) into ``STATE_DIR/requests/``; the daemon, which looks there every
second, runs the very same action (``actions.py``) in its own context and writes the
outcome (the lines to print and the exit code) next to it; the command waits for that
and prints it. Files rather than a socket: it works the same in a container and under
systemd, and who may ask is settled by the folder's owner and mode, which both sides
check: the folder must belong to the user the daemon runs as and be writable by nobody
else, or nothing in it is taken. Root may ask too: its request file is handed to the
daemon's user. Everything an outsider could still leave there (a symlink, a FIFO, a
device, a huge or malformed file, a file of another owner) is skipped with one log line
and removed, never followed, waited on or read without bound. The folder is 0700 and
every file in it 0600: an answer can carry a password (``accounts``), and it is removed
once read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from klash_sync.errors import UserError
from klash_sync.service import guarded

REQUESTS = "requests"
TAKE_WITHIN = 60.0  # seconds a live daemon may take to pick a request up
LONGEST = 3600.0  # seconds a command waits for the answer to a request the daemon took
MAX_REQUEST = 64 * 1024  # bytes: a request is a few hundred; anything larger is not one
MAX_ANSWER = 16 * 1024 * 1024  # bytes: an answer is a line per calendar
_NAME = re.compile(r"[0-9a-f]{32}\.request")


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


@dataclass
class Taken:
    """One look into the folder: the requests, one line per file skipped (its name and
    why), and why the folder itself was refused, if it was."""

    requests: list[Request] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refused: str | None = None


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def folder(state_dir: Path) -> Path:
    return state_dir / REQUESTS


def prepare(state_dir: Path) -> None:
    """Create the folder (the daemon does at start, so that it is the daemon user's)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder(state_dir), 0o700)


def _open_folder(where: Path, owner: int) -> int:
    """The folder open as a descriptor, checked to be ``owner``'s alone; else UserError.

    Its owner and mode are looked at before it is opened too: a folder of root's, 0700,
    cannot be opened by the service's user, and that must be said as such.
    """
    try:
        st = os.lstat(where)
        if stat.S_ISDIR(st.st_mode):
            problem = guarded.folder_problem(where, st, owner)
            if problem is not None:
                raise UserError(problem)
        dfd = os.open(where, guarded.DIR_FLAGS)
    except OSError as e:
        raise UserError(f"{where} cannot be used for requests to the running daemon "
                        f"({e.strerror}); remove it, and restart klash-sync run") from None
    problem = guarded.folder_problem(where, os.fstat(dfd), owner)  # it may have been swapped
    if problem is not None:
        os.close(dfd)
        raise UserError(problem)
    return dfd


def submit(state_dir: Path, action: str, args: dict[str, Any], *, programme: str,
           now: float | None = None, owner: int | None = None) -> str:
    """Write a request atomically; return its id.

    ``owner``: the uid the daemon runs as (default: ours). Only that user and root may
    ask; root's request file is handed to that user, so that the daemon can read it.
    """
    me = os.geteuid()
    owner = me if owner is None else owner
    if me not in (0, owner):
        raise UserError(f"klash-sync run runs as {guarded.who(owner)} and takes requests only from "
                        f"that user and root; run this command as {guarded.user_name(owner)}")
    where = folder(state_dir)
    try:
        os.mkdir(where, 0o700)
        if me != owner:
            os.chown(where, owner, -1)
    except FileExistsError:
        pass
    except OSError as e:
        raise UserError(f"cannot create {where} ({e.strerror}); run this command as "
                        f"{guarded.user_name(owner)}") from None
    dfd = _open_folder(where, owner)
    try:
        rid = uuid.uuid4().hex
        made_at = time.time() if now is None else now
        guarded.write_private(dfd, f"{rid}.request", json.dumps(
            {"action": action, "args": args, "made_at": made_at, "programme": programme}), owner)
    finally:
        os.close(dfd)
    return rid


def _answer_in(where: Path, rid: str) -> Answer | None:
    """The answer to ``rid`` if it is there (and remove it), read as safely as a request."""
    try:
        dfd = os.open(where, guarded.DIR_FLAGS)
    except OSError:
        return None
    try:
        raw, _ = guarded.read(dfd, f"{rid}.done", (os.stat(where).st_uid, os.geteuid(), 0), MAX_ANSWER)
        if raw is None:
            return None
        with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
            data = json.loads(raw)
            lines = [(str(s), str(t)) for s, t in data["lines"]]
            answer = Answer(int(data["code"]), lines)
            guarded.remove(dfd, f"{rid}.done")
            return answer
        return None
    finally:
        os.close(dfd)


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
            got = _answer_in(where, rid)
            if got is not None:
                return got
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


def _parse(rid: str, raw: bytes) -> Request | None:
    """The request in ``raw``, or None when it is not one (wrong shape or types)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    action, args = data.get("action"), data.get("args", {})
    made_at, programme = data.get("made_at"), data.get("programme")
    if not isinstance(action, str) or not isinstance(args, dict) or not isinstance(
            programme, str) or isinstance(made_at, bool) or not isinstance(made_at, int | float):
        return None
    return Request(rid, action, args, float(made_at), programme)


def take(state_dir: Path) -> Taken:
    """Requests waiting for the daemon (each is taken once: its file is renamed), and
    what was skipped.

    A file that cannot be a request is removed (logged by the caller); a request of the
    daemon's user that it cannot read comes back with an empty ``action``, to be answered
    as such, so that its command is told.
    """
    where = folder(state_dir)
    got = Taken()
    me = os.geteuid()
    if not os.path.lexists(where):
        return got
    try:
        dfd = _open_folder(where, me)
    except UserError as e:
        got.refused = str(e)
        return got
    try:
        for name in sorted(os.listdir(dfd)):
            if not name.endswith(".request"):
                continue
            rid = name.removesuffix(".request")
            taken = f"{rid}.taken"
            try:
                os.rename(name, taken, src_dir_fd=dfd, dst_dir_fd=dfd)
            except OSError:
                continue  # withdrawn by its command meanwhile
            if not _NAME.fullmatch(name):
                got.skipped.append(f"{name!r}: not a request's name")  # as is, no log line
                guarded.remove(dfd, taken)
                continue
            raw, why = guarded.read(dfd, taken, (me, 0), MAX_REQUEST)
            if raw is None:
                got.skipped.append(f"{name}: {why}")
                guarded.remove(dfd, taken)
                continue
            request = _parse(rid, raw)
            if request is None:
                got.skipped.append(f"{name}: not a request (malformed content)")
                request = Request(rid, "")
            got.requests.append(request)
    finally:
        os.close(dfd)
    return got


def answer(state_dir: Path, rid: str, code: int, lines: list[tuple[str, str]]) -> None:
    dfd = os.open(folder(state_dir), guarded.DIR_FLAGS)
    try:
        guarded.write_private(dfd, f"{rid}.done", json.dumps({"code": code, "lines": lines}))
        guarded.remove(dfd, f"{rid}.taken")
    finally:
        os.close(dfd)


def sweep(state_dir: Path, older_than: float) -> None:
    """Remove answers nobody read (their command was killed) and leftovers, so an answer
    with a password in it does not stay on disk."""
    limit = time.time() - older_than
    with contextlib.suppress(OSError):
        dfd = os.open(folder(state_dir), guarded.DIR_FLAGS)
        try:
            for name in os.listdir(dfd):
                with contextlib.suppress(OSError):
                    if name.endswith((".done", ".tmp")) and os.stat(
                            name, dir_fd=dfd, follow_symlinks=False).st_mtime < limit:
                        os.unlink(name, dir_fd=dfd)
        finally:
            os.close(dfd)
