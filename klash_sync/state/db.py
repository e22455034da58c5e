"""Opening the state database: one SQLite file, kept, never thrown away on doubt.

SQLite in WAL mode commits atomically, so a kill -9 at any moment leaves either
the old or the new state, and the next start uses it as it is.

**The store is kept, never thrown away on doubt.** Only a file that is positively
not an SQLite database, or that fails ``PRAGMA integrity_check``, is moved aside
(with its WAL and shared-memory files, renamed, never deleted: the WAL holds
committed transactions). A permission, lock, read-only or I/O error stops the
command with one line saying what, where and what to do (``StateError``).

``Database`` is the base of ``Store``: the connection, its lock, transactions,
the check that the file is still the one opened, and the plain key-value table.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from klash_sync.errors import StateError
from klash_sync.state.schema import prepare

log = logging.getLogger(__name__)

# SQLite's primary result codes for "this file is not a (sound) database": only these
# move a file aside. Everything else (CANTOPEN, PERM, READONLY, BUSY, LOCKED, IOERR,
# FULL, ...) is a problem of the surroundings, and the file is left exactly as it is.
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_SQLITE_MAGIC = b"SQLite format 3\x00"


def iso(moment: datetime) -> str:
    """How the store writes a moment: UTC, whole seconds."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def parse_time(text: str) -> datetime:
    """A moment as the store wrote it."""
    return datetime.fromisoformat(text)


def _code(e: sqlite3.Error) -> int:
    return (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF


def _state_problem(path: Path, e: BaseException) -> StateError:
    """One line for a store that cannot be used: what, which path, what to do."""
    code = _code(e) if isinstance(e, sqlite3.Error) else 0
    err = getattr(e, "errno", None)
    where = path.parent
    who = f"uid {os.getuid()}" if hasattr(os, "getuid") else "this user"
    if code in (5, 6) or "locked" in str(e).lower():  # BUSY, LOCKED
        return StateError(
            f"the state database {path} is locked by another process (another klash-sync, or a "
            "tool holding it open); stop that process and try again")
    if code in (10, 13) or err in (errno.EIO, errno.ENOSPC):  # IOERR, FULL
        return StateError(
            f"the state database {path} cannot be read or written ({e}); check the disk and "
            f"the volume behind {where}")
    if code == 8 or err == errno.EROFS or "readonly" in str(e).lower():  # READONLY
        return StateError(
            f"the state directory {where} is read-only for klash-sync ({who}); mount it "
            "read-write, or point KLASH_STATE_DIR at a writable directory")
    return StateError(
        f"cannot open the state database {path} ({e}); the state directory {where} must be "
        f"readable and writable by the user klash-sync runs as ({who}), e.g. "
        f"chown -R {os.getuid() if hasattr(os, 'getuid') else 'USER'} {where}")


class Database:
    """Thread-safe access to the state database; every method is one transaction.

    ``readonly(path)`` is a copy in memory for commands that promise to change
    nothing (``plan``, ``export``): they compute exactly what a writer would, and
    everything they "write" vanishes with the process.
    """

    def __init__(self, path: Path, *, _db: sqlite3.Connection | None = None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self.broken: str | None = None
        self._identity: tuple[int, int] | None = None
        if _db is not None:
            self._db = _db
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise _state_problem(path, e) from None
        self._db = self._open(path)
        self._identity = self._stat_identity()

    @classmethod
    def readonly(cls, path: Path) -> Self:
        """A private in-memory copy of the store at ``path``; nothing touches the file.

        A database that a writer has open (its WAL exists) is read through SQLite in
        read-only mode, which then creates nothing; a closed one is read as bytes, since
        opening it even read-only would create its -wal and -shm files.
        """
        memory = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        try:
            if Path(str(path) + "-wal").exists():
                source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
                try:
                    source.backup(memory)
                finally:
                    source.close()
            elif path.exists():
                data = bytearray(path.read_bytes())
                if data[:16] == _SQLITE_MAGIC and len(data) >= 20:
                    data[18:20] = b"\x01\x01"  # WAL mode cannot be read from memory: rollback mode
                memory.deserialize(bytes(data))
        except (OSError, sqlite3.Error) as e:
            memory.close()
            raise _state_problem(path, e) from None
        try:
            prepare(memory)
        except sqlite3.DatabaseError:
            memory.close()  # unreadable: plan against an empty store, as a writer would after moving it aside
            memory = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            prepare(memory)
        return cls(path, _db=memory)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        # Made 0600 before SQLite makes it 0644 (mentors' e-mails and calendar addresses);
        # its -wal and -shm files take its mode. One left 0644 by an older release is narrowed.
        with contextlib.suppress(OSError):  # unusable: SQLite says so below, as before
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                if os.fstat(fd).st_mode & 0o077:
                    os.fchmod(fd, 0o600)
            finally:
                os.close(fd)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            prepare(db)
            db.execute("PRAGMA busy_timeout=30000")
        except BaseException:
            db.close()
            raise
        return db

    def _open(self, path: Path) -> sqlite3.Connection:
        problem = _foreign_file(path)
        if problem is None:
            try:
                db = self._connect(path)
            except sqlite3.DatabaseError as e:
                if _code(e) not in _CORRUPT_CODES:
                    raise _state_problem(path, e) from None
                problem = str(e)
            else:
                try:
                    verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
                except sqlite3.DatabaseError as e:
                    if _code(e) not in _CORRUPT_CODES:
                        db.close()
                        raise _state_problem(path, e) from None
                    verdict = str(e)
                if verdict == "ok":
                    return db
                db.close()
                problem = f"integrity check failed: {verdict}"
        self._move_aside(path, problem)
        try:
            return self._connect(path)
        except sqlite3.Error as e:
            raise _state_problem(path, e) from None

    @staticmethod
    def _move_aside(path: Path, problem: str) -> None:
        """Rename a bad database and its companions to ``*.bad-N``; delete nothing."""
        n = 1
        while any(Path(f"{path}.bad-{n}{s}").exists() for s in ("", "-wal", "-shm")):
            n += 1
        aside = Path(f"{path}.bad-{n}")
        try:
            for suffix in ("", "-wal", "-shm"):
                source = Path(f"{path}{suffix}")
                if source.exists():
                    source.replace(Path(f"{aside}{suffix}"))
        except OSError as e:
            raise _state_problem(path, e) from None
        log.warning("state database %s is not usable (%s); kept it as %s (with its WAL) and "
                    "starting a new one: the next sync reconciles with the servers by UID",
                    path, problem, aside)

    def _stat_identity(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def check(self) -> str | None:
        """None while the database file is still the one we opened; else what happened.

        A state directory removed (or replaced) under a running daemon would otherwise
        have it write on into an unlinked file, and lose everything at the next start.
        """
        if self._identity is None:
            return None
        current = self._stat_identity()
        if current == self._identity:
            return None
        if current is None:
            message = (f"the state database {self.path} was removed while klash-sync was running; "
                       "nothing more is written; restore it or restart klash-sync")
        else:
            message = (f"the state database {self.path} was replaced while klash-sync was running; "
                       "nothing more is written; restart klash-sync to use the new one")
        self.broken = message
        return message

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def content_digest(self) -> str:
        """A hash of everything in the store (tests and operators: "did anything change?")."""
        import hashlib

        with self._lock:
            dump = "\n".join(self._db.iterdump())
        return hashlib.sha256(dump.encode()).hexdigest()

    def add_schema(self, sql: str) -> None:
        """Create the tables of a part that keeps its own records here (the invitations' outbox)."""
        with self._lock:
            self._db.executescript(sql)

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, for reads, under the store's lock."""
        with self._lock:
            yield self._db

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT), for parts that keep records here."""
        return self._tx()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self.broken is not None:
                raise StateError(self.broken)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ------------------------------------------------------------------ kv

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))


def _foreign_file(path: Path) -> str | None:
    """Why the file at ``path`` is positively not an SQLite database, or None."""
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _state_problem(path, e) from None
    if not head:
        return None  # an empty file is a database not yet written
    if head != _SQLITE_MAGIC:
        return "not an SQLite database"
    return None
