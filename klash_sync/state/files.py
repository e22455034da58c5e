"""The store's file looked at without changing it, and what is wrong with it in one line.

Commands must be able to refuse a store (written by a newer klash-sync, held by another
program) without leaving a trace in it: no table created, no WAL checkpointed into it.
So the version is read from the file's header, or through SQLite in read-only mode when
a WAL holds newer pages (``peek_version``); the read-only commands work on a copy in
memory (``memory_copy``). A database that another program holds is waited for up to
``BUSY_TIMEOUT``, then refused with one line; nothing here waits for ever.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from pathlib import Path

from klash_sync.errors import StateError
from klash_sync.state.migrations import copy_into
from klash_sync.state.schema import VERSION

log = logging.getLogger(__name__)

# SQLite's primary result codes for "this file is not a (sound) database": only these
# move a file aside. Everything else (CANTOPEN, PERM, READONLY, BUSY, LOCKED, IOERR,
# FULL, ...) is a problem of the surroundings, and the file is left exactly as it is.
CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
# What a write or read can meet from the surroundings: said in one line (``state_problem``).
SURROUNDINGS = {5, 6, 8, 10, 13}  # BUSY, LOCKED, READONLY, IOERR, FULL
SQLITE_MAGIC = b"SQLite format 3\x00"
# How long a command waits for a database that another program holds (a backup tool, an
# ``sqlite3`` shell in a transaction) before it stops with one line: never for ever.
BUSY_TIMEOUT = 10.0


def result_code(e: sqlite3.Error) -> int:
    """SQLite's primary result code of an error (0 when it carries none)."""
    return (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF


def newer_schema(path: Path, found: int) -> StateError:
    """A store written by a newer klash-sync: refused, one line, what to do."""
    return StateError(
        f"the state in {path.parent} was written by a newer klash-sync (schema {found}, this one "
        f"knows {VERSION}); run that version or a later one, or point KLASH_STATE_DIR at a copy "
        f"made for this one (an upgrade keeps one as {path.name}.schema-N.bak)")


def state_problem(path: Path, e: BaseException) -> StateError:
    """One line for a store that cannot be used: what, which path, what to do."""
    code = result_code(e) if isinstance(e, sqlite3.Error) else 0
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


def room_problem(path: Path, size: int = 1 << 20) -> str | None:
    """None if ``size`` new bytes fit beside the database at ``path``; else why not, in one line.

    Asked of the file system without writing (``statvfs``, ``access``): the service asks
    every few seconds for months, and a written probe would wear a flash card by a
    gigabyte a day. A full, read-only or removed volume, or a directory we may no longer
    write, is found before an edit is lost to it. (A quota is not visible this way; a
    write it refuses is reported by the write itself.)
    """
    where = path.parent
    try:
        found = os.statvfs(where)
        if not os.access(where, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(where))
    except OSError as e:
        return str(state_problem(path, e))
    if found.f_flag & os.ST_RDONLY:
        return str(state_problem(path, OSError(errno.EROFS, os.strerror(errno.EROFS))))
    if found.f_bavail * found.f_frsize < size:
        return str(state_problem(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    return None


def peek_version(path: Path) -> int | None:
    """The version recorded in the store at ``path``, read without writing anything.

    From the header's ``user_version`` when there is no WAL; with one (a writer has it
    open, or was killed), through SQLite in read-only mode, which sees what the WAL holds
    and checkpoints nothing. None when there is no store or it is not one (``Database``
    decides what to do with those); a store held by another program: ``StateError``.
    """
    try:
        with path.open("rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise state_problem(path, e) from None
    if len(head) < 100 or head[:16] != SQLITE_MAGIC:
        return None
    wal = Path(f"{path}-wal")
    if not wal.exists() or wal.stat().st_size == 0:
        return int.from_bytes(head[60:64], "big")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
        try:
            return int(db.execute("PRAGMA user_version").fetchone()[0])
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        if result_code(e) in CORRUPT_CODES:
            return None
        raise state_problem(path, e) from None


def foreign_file(path: Path) -> str | None:
    """Why the file at ``path`` is positively not an SQLite database, or None."""
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise state_problem(path, e) from None
    if not head:
        return None  # an empty file is a database not yet written
    if head != SQLITE_MAGIC:
        return "not an SQLite database"
    return None


def memory_copy(path: Path) -> sqlite3.Connection:
    """The store at ``path`` copied into memory; an empty database when there is none.

    A database that a writer has open (its WAL exists) is read through SQLite in
    read-only mode, which then creates nothing; a closed one is read as bytes, since
    opening it even read-only would create its -wal and -shm files.
    """
    memory = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    try:
        if Path(str(path) + "-wal").exists():
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
            try:
                copy_into(source, memory)
            finally:
                source.close()
        elif path.exists():
            data = bytearray(path.read_bytes())
            if data[:16] == SQLITE_MAGIC and len(data) >= 20:
                data[18:20] = b"\x01\x01"  # WAL mode cannot be read from memory: rollback mode
            memory.deserialize(bytes(data))
    except (OSError, sqlite3.Error) as e:
        memory.close()
        raise state_problem(path, e) from None
    return memory


def move_aside(path: Path, problem: str) -> None:
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
        raise state_problem(path, e) from None
    log.warning("state database %s is not usable (%s); kept it as %s (with its WAL) and "
                "starting a new one: the next sync reconciles with the servers by UID",
                path, problem, aside)
