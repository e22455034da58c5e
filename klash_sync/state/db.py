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
from klash_sync.state.files import (
    BUSY_TIMEOUT,
    CORRUPT_CODES,
    SURROUNDINGS,
    foreign_file,
    memory_copy,
    move_aside,
    newer_schema,
    peek_version,
    result_code,
    room_problem,
    state_problem,
)
from klash_sync.state.migrations import keep_copy
from klash_sync.state.schema import VERSION, NewerSchema, prepare

log = logging.getLogger(__name__)


def iso(moment: datetime) -> str:
    """How the store writes a moment: UTC, whole seconds."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def parse_time(text: str) -> datetime:
    """A moment as the store wrote it."""
    return datetime.fromisoformat(text)


class Database:
    """Thread-safe access to the state database; every method is one transaction.

    ``readonly(path)`` is a copy in memory for commands that promise to change
    nothing (``plan``, ``export``): they compute exactly what a writer would, and
    everything they "write" vanishes with the process.
    """

    def __init__(self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT,
                 _db: sqlite3.Connection | None = None) -> None:
        """``busy_timeout``: how long a write waits for another program holding the database.
        A command waits the full ``BUSY_TIMEOUT``; the service asks for less, since every wait
        holds the store's lock, which its status answers need, and it tries again anyway."""
        self.path = path
        self.busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self.broken: str | None = None
        self._identity: tuple[int, int] | None = None
        if _db is not None:
            self._db = _db
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise state_problem(path, e) from None
        found = peek_version(path)
        if found is not None and found > VERSION:
            raise newer_schema(path, found)  # before any connection that could write
        self._db = self._open(path)
        self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        self._identity = self._stat_identity()

    @classmethod
    def readonly(cls, path: Path) -> Self:
        """A private in-memory copy of the store at ``path``; nothing touches the file.

        A database that a writer has open (its WAL exists) is read through SQLite in
        read-only mode, which then creates nothing; a closed one is read as bytes, since
        opening it even read-only would create its -wal and -shm files. One held by
        another program stops the command after ``BUSY_TIMEOUT``, never hangs it. An older
        store is upgraded in the copy only; a newer one is refused.
        """
        memory = memory_copy(path)
        try:
            prepare(memory)
        except NewerSchema as e:
            memory.close()
            raise newer_schema(path, e.found) from None
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
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                             timeout=BUSY_TIMEOUT)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            db.close()
            raise
        return db

    def _prepared(self, db: sqlite3.Connection) -> sqlite3.Connection:
        """The tables at this code's version: an older store upgraded after a copy is kept."""
        try:
            prepare(db, keep=lambda found: keep_copy(db, self.path, found))
        except NewerSchema as e:  # marked newer after the look at the header: a race, refused
            db.close()
            raise newer_schema(self.path, e.found) from None
        except sqlite3.Error as e:
            db.close()
            if result_code(e) in SURROUNDINGS or "locked" in str(e).lower():
                raise state_problem(self.path, e) from None
            raise StateError(  # the one transaction rolled back: the store is as it was
                f"the state database {self.path} could not be upgraded to schema {VERSION} ({e}); "
                f"it is left as it was, with a copy beside it ({self.path.name}.schema-N.bak); "
                "run the release that made it, and report this") from None
        except OSError as e:
            db.close()
            raise state_problem(self.path, e) from None
        return db

    def _open(self, path: Path) -> sqlite3.Connection:
        problem = foreign_file(path)
        if problem is None:
            try:
                db = self._connect(path)
            except sqlite3.DatabaseError as e:
                if result_code(e) not in CORRUPT_CODES:
                    raise state_problem(path, e) from None
                problem = str(e)
            else:
                try:
                    verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
                except sqlite3.DatabaseError as e:
                    if result_code(e) not in CORRUPT_CODES:
                        db.close()
                        raise state_problem(path, e) from None
                    verdict = str(e)
                if verdict == "ok":
                    return self._prepared(db)
                db.close()
                problem = f"integrity check failed: {verdict}"
        move_aside(path, problem)
        try:
            db = self._connect(path)
        except sqlite3.Error as e:
            raise state_problem(path, e) from None
        return self._prepared(db)

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

    def probe(self, *, wait: float = 0.2) -> str | None:
        """None if the store can be written now; else the one-line reason (nothing is changed).

        Two questions, because each failure answers only one: may we take the write lock
        (another program holding the database, waited for ``wait`` seconds, not the whole
        busy timeout, so that a service asking every few seconds never stalls on it), and
        does the directory take new bytes (a full or read-only volume, a removed directory:
        SQLite itself would find out only on the next write that does not fit).
        """
        if self.broken is not None:
            return self.broken
        with self._lock:
            try:
                self._db.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.execute("ROLLBACK")
                finally:
                    self._db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            except sqlite3.Error as e:
                return str(state_problem(self.path, e))
        return room_problem(self.path)

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
        with self._lock, self._surroundings():
            yield self._db

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT), for parts that keep records here."""
        return self._tx()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self.broken is not None:
                raise StateError(self.broken)
            with self._surroundings():
                self._db.execute("BEGIN IMMEDIATE")  # waits up to busy_timeout for another writer
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise

    @contextmanager
    def _surroundings(self) -> Iterator[None]:
        """A locked, read-only, full or failing database as one line (``StateError``)."""
        try:
            yield
        except sqlite3.OperationalError as e:
            if result_code(e) not in SURROUNDINGS and "locked" not in str(e).lower():
                raise
            raise state_problem(self.path, e) from None

    # ------------------------------------------------------------------ kv

    def get(self, key: str) -> str | None:
        with self.reading():
            row = self._db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))
