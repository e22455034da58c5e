"""One writer per state directory.

Two processes writing one state directory fight: each rewrites every event the
other wrote, SEQUENCEs go up and down, the change log fills with bogus entries.
So every command that writes (``run``, ``serve``, ``sync``, ``purge``, ``accounts``,
``feeds rotate``, ``export --all``, ``invites --send``) holds an exclusive ``flock`` on
``STATE_DIR/klash-sync.lock`` for its whole life, and a second one stops at once
with who holds it. The kernel drops the lock when the holder dies, even by
kill -9, so a stale lock file never blocks anyone: only a live process does.

Commands that change nothing (``plan``, ``validate``, ``export`` to a file or
standard output, ``feeds``, ``invites`` without ``--send``) take no lock and work beside a running daemon.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from klash_sync.errors import StateBusy, StateError

LOCK_NAME = "klash-sync.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a state directory, as written into the lock file by the holder."""

    pid: int
    started: str
    command: str


class StateLock:
    """An exclusive, process-lifetime lock on a state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, command: str, now: datetime) -> StateLock:
        """Take the lock or raise ``StateBusy`` naming the holder; ``StateError`` if unwritable."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise _unusable(self.state_dir, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StateBusy(busy_message(self.state_dir, self.holder())) from None
            raise _unusable(self.state_dir, e) from None
        record = json.dumps({"pid": os.getpid(), "started": now.replace(microsecond=0).isoformat(),
                             "command": command})
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, record.encode() + b"\n", 0)
        except OSError as e:
            os.close(fd)
            raise _unusable(self.state_dir, e) from None
        self._fd = fd
        return self

    def holder(self) -> Holder | None:
        """Who holds the lock now, or None when nobody does (the file may be stale)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                pass  # held exclusively: someone is there; read who
            else:
                return None  # we could take it: nobody holds it
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                data = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
                return Holder(int(data["pid"]), str(data["started"]), str(data["command"]))
            return Holder(0, "?", "?")
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def busy_message(state_dir: Path, holder: Holder | None) -> str:
    who = (f"pid {holder.pid}, started {holder.started}, `klash-sync {holder.command}`"
           if holder is not None and holder.pid else "pid unknown")
    return (f"another klash-sync ({who}) is using {state_dir}; stop it first, or use a "
            "command that hands the work to it (see `klash-sync COMMAND --help`)")


def _unusable(state_dir: Path, e: OSError) -> StateError:
    uid = os.getuid()
    if e.errno == errno.EROFS:
        return StateError(f"the state directory {state_dir} is on a read-only file system; mount it "
                          "read-write, or point KLASH_STATE_DIR at a writable directory")
    if e.errno in (errno.EACCES, errno.EPERM):
        return StateError(f"the state directory {state_dir} is not writable by klash-sync (uid {uid}); "
                          f"e.g. chown -R {uid} {state_dir}, or run as its owner")
    return StateError(f"cannot use the state directory {state_dir}: {e.strerror or e}")
