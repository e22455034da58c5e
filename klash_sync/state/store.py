"""The state store: what klash-sync remembers between runs, in one SQLite file.

It keeps, per session, the content fingerprint, SEQUENCE and when it last changed
(so feeds are deterministic and a reschedule raises SEQUENCE); per feed, its ETag
and when its bytes last changed (Last-Modified); per calendar and event, the href,
ETag and content hash the server gave back (so a no-op sync costs one request);
and the log of applied changes shown to people.

SQLite in WAL mode commits atomically, so a kill -9 at any moment leaves either
the old or the new state, and the next start uses it as it is.

**The store is kept, never thrown away on doubt.** Only a file that is positively
not an SQLite database, or that fails ``PRAGMA integrity_check``, is moved aside
(with its WAL and shared-memory files, renamed, never deleted: the WAL holds
committed transactions). A permission, lock, read-only or I/O error stops the
command with one line saying what, where and what to do (``StateError``).

**Nothing a client has seen goes backwards, even when this store is lost.**

* Time: every stamp the store hands out (an event's CREATED/LAST-MODIFIED/DTSTAMP,
  a feed's Last-Modified) is at least the highest one it handed out before (a
  high-water mark in ``kv``), and a feed whose bytes changed gets a Last-Modified
  strictly above its previous one, so a clock that steps back can neither make a
  client's If-Modified-Since hide a change nor put LAST-MODIFIED before CREATED.
* SEQUENCE: a session this store has never seen does not start at 0 but at
  ``sequence_floor(now)``, the number of seconds since 2020-01-01. Each later change
  adds exactly 1 (iTIP clients expect updates one higher). A SEQUENCE handed out
  before is therefore at most "the floor when the session was first seen + the
  number of changes since", which stays below the floor at any later moment unless
  a session changed more than once per second on average over its whole life. So a
  store that is deleted and rebuilt, with or without a programme change, renders
  every UID with a higher SEQUENCE than any copy of it a client holds, without
  having to ask anyone. Where our events sit on CalDAV servers, the sync also reads
  their SEQUENCE and raises ours above it before it writes (``raise_sequence``):
  that covers a store restored from an old backup, whose numbers are real but
  stale. The cost of this design is one rewrite of each pushed event after a lost
  store (its SEQUENCE rises), and large numbers in SEQUENCE, which RFC 5545 allows
  (it is a 32-bit integer; this floor reaches 2^31 in 2088).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from klash_sync.errors import StateError
from klash_sync.state.records import Change, Revision

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    created TEXT NOT NULL,
    changed TEXT NOT NULL,
    removed TEXT,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS feeds (
    name TEXT PRIMARY KEY,
    etag TEXT NOT NULL,
    changed TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    calendar TEXT NOT NULL,
    uid TEXT NOT NULL,
    href TEXT NOT NULL,
    etag TEXT,
    hash TEXT NOT NULL,
    PRIMARY KEY (calendar, uid)
);
CREATE TABLE IF NOT EXISTS calendars (
    calendar TEXT PRIMARY KEY,
    mentor TEXT NOT NULL,
    target TEXT NOT NULL,
    url TEXT
);
CREATE TABLE IF NOT EXISTS foreign_items (
    calendar TEXT NOT NULL,
    href TEXT NOT NULL,
    etag TEXT,
    PRIMARY KEY (calendar, href)
);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    session TEXT NOT NULL,
    kind TEXT NOT NULL,
    text_fi TEXT NOT NULL,
    text_en TEXT NOT NULL,
    text_sv TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_FLOOR_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_CLOCK_KEY = "clock.high-water"
# SQLite's primary result codes for "this file is not a (sound) database": only these
# move a file aside. Everything else (CANTOPEN, PERM, READONLY, BUSY, LOCKED, IOERR,
# FULL, ...) is a problem of the surroundings, and the file is left exactly as it is.
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_SQLITE_MAGIC = b"SQLite format 3\x00"


def sequence_floor(moment: datetime) -> int:
    """The lowest SEQUENCE a session first seen at ``moment`` may get (see the module doc)."""
    return max(0, int((moment - _FLOOR_EPOCH).total_seconds()))


@dataclass(frozen=True)
class Item:
    """One event of ours on one calendar, as the server last confirmed it."""

    uid: str
    href: str
    etag: str | None
    hash: str


@dataclass
class Revised:
    """The outcome of recording a programme version in the store."""

    revisions: dict[str, Revision]
    happened: dict[str, str]  # session id -> added | changed | removed | restored
    previous: dict[str, dict[str, Any] | None]  # summaries of changed and removed sessions, before
    first: bool  # the store knew no sessions: this is the initial import


@dataclass(frozen=True)
class CalendarRecord:
    """A calendar we write to: its key, its mentor, how to reach it (no secrets), its URL."""

    key: str
    mentor: str
    target: dict[str, Any]
    url: str | None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _parse(text: str) -> datetime:
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


class Store:
    """Thread-safe access to the state database; every method is one transaction.

    ``Store.readonly(path)`` is a copy in memory for commands that promise to change
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
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _state_problem(path, e) from None
        self._db = self._open(path)
        self._identity = self._stat_identity()

    @classmethod
    def readonly(cls, path: Path) -> Store:
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
            cls._prepare(memory)
        except sqlite3.DatabaseError:
            memory.close()  # unreadable: plan against an empty store, as a writer would after moving it aside
            memory = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            cls._prepare(memory)
        return cls(path, _db=memory)

    @staticmethod
    def _prepare(db: sqlite3.Connection) -> None:
        db.executescript(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(sessions)")}
        if "summary" not in columns:  # stores made before the change log existed
            db.execute("ALTER TABLE sessions ADD COLUMN summary TEXT")
        if "text_sv" not in {row[1] for row in db.execute("PRAGMA table_info(changes)")}:
            db.execute("ALTER TABLE changes ADD COLUMN text_sv TEXT NOT NULL DEFAULT ''")  # before Swedish

    @classmethod
    def _connect(cls, path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            cls._prepare(db)
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

    @staticmethod
    def _stamp(db: sqlite3.Connection, now: datetime) -> datetime:
        """``now``, but never below a stamp handed out before; records the high-water mark."""
        row = db.execute("SELECT value FROM kv WHERE key=?", (_CLOCK_KEY,)).fetchone()
        moment = _parse(_iso(now))
        if row is not None:
            moment = max(moment, _parse(row[0]))
        db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (_CLOCK_KEY, _iso(moment)))
        return moment

    # ------------------------------------------------------------ sessions

    def revise(
        self, fingerprints: Mapping[str, str], now: datetime,
        summaries: Mapping[str, dict[str, Any]] | None = None,
    ) -> Revised:
        """Record the programme's sessions; return each one's revision and what happened.

        A session whose fingerprint changed gets SEQUENCE + 1 and ``changed = now``; a
        new one starts at ``sequence_floor(now)`` (see the module doc for why not 0);
        one that disappeared is marked removed but remembered, so that if it comes back
        its SEQUENCE keeps rising (clients ignore lower ones). ``summaries`` (what people
        notice about each session) are kept so that the next version can be described
        in words against this one.
        """
        summaries = summaries or {}
        result = Revised({}, {}, {}, first=False)
        with self._tx() as db:
            moment = self._stamp(db, now)
            stamp = _iso(moment)
            rows = {
                r[0]: r
                for r in db.execute(
                    "SELECT id, hash, sequence, created, changed, removed, summary FROM sessions"
                )
            }
            result.first = not rows
            for sid, digest in fingerprints.items():
                row = rows.get(sid)
                text = json.dumps(summaries.get(sid), ensure_ascii=False, sort_keys=True)
                if row is None:
                    floor = sequence_floor(moment)
                    db.execute(
                        "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, NULL, ?)",
                        (sid, digest, floor, stamp, stamp, text),
                    )
                    result.revisions[sid] = Revision(floor, moment, moment)
                    result.happened[sid] = "added"
                    continue
                _, old_hash, seq, created, changed, removed, old_summary = row
                if old_hash != digest or removed is not None:
                    seq += 1
                    changed = stamp
                    result.happened[sid] = "restored" if removed is not None else "changed"
                    result.previous[sid] = json.loads(old_summary) if old_summary else None
                    db.execute(
                        "UPDATE sessions SET hash=?, sequence=?, changed=?, removed=NULL, summary=? "
                        "WHERE id=?",
                        (digest, seq, changed, text, sid),
                    )
                result.revisions[sid] = Revision(seq, _parse(changed), _parse(created))
            for sid, row in rows.items():
                if sid not in fingerprints and row[5] is None:
                    db.execute("UPDATE sessions SET removed=? WHERE id=?", (stamp, sid))
                    result.happened[sid] = "removed"
                    result.previous[sid] = json.loads(row[6]) if row[6] else None
        return result

    def raise_sequence(self, session_id: str, at_least: int, now: datetime) -> bool:
        """Lift a session's SEQUENCE to ``at_least`` (a server holds that or a higher one).

        Called by the sync when a server's copy of one of our events carries a SEQUENCE
        that our next write would not exceed (a store restored from an old backup, or an
        app that edited the event and raised it). The revision's time moves to now, so
        DTSTAMP and LAST-MODIFIED rise with it. Returns True if anything changed.
        """
        with self._tx() as db:
            row = db.execute("SELECT sequence FROM sessions WHERE id=?", (session_id,)).fetchone()
            if row is None or row[0] >= at_least:
                return False
            stamp = _iso(self._stamp(db, now))
            db.execute("UPDATE sessions SET sequence=?, changed=? WHERE id=?",
                       (at_least, stamp, session_id))
        log.info("SEQUENCE of %s raised from %d to %d to stay above a server's copy",
                 session_id, row[0], at_least)
        return True

    # --------------------------------------------------------------- feeds

    def feeds_changed(self, etags: Mapping[str, str], now: datetime) -> dict[str, datetime]:
        """When each feed's bytes last changed: now where its ETag is new, else as stored.

        A changed feed's time is strictly above its previous one, whatever the clock
        says: clients revalidate with If-Modified-Since, and an equal or older
        Last-Modified would get them a 304 for a feed that changed.
        One transaction for all feeds: a programme has a feed per mentor.
        """
        result: dict[str, datetime] = {}
        with self._tx() as db:
            moment = self._stamp(db, now)
            known = {r[0]: (r[1], r[2]) for r in db.execute("SELECT name, etag, changed FROM feeds")}
            for name, etag in etags.items():
                old = known.get(name)
                if old is not None and old[0] == etag:
                    result[name] = _parse(old[1])
                    continue
                at = moment
                if old is not None and at <= _parse(old[1]):
                    at = _parse(old[1]) + timedelta(seconds=1)
                db.execute("INSERT OR REPLACE INTO feeds VALUES (?, ?, ?)", (name, etag, _iso(at)))
                result[name] = at
            if result:
                latest = max(result.values())
                if latest > moment:
                    db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (_CLOCK_KEY, _iso(latest)))
        return result

    # ------------------------------------------------------------- changes

    def add_changes(self, entries: list[tuple[datetime, str, str, str, str, str]]) -> None:
        """Append (at, session, kind, text_fi, text_en, text_sv) entries to the change log."""
        if not entries:
            return
        with self._tx() as db:
            db.executemany(
                "INSERT INTO changes (at, session, kind, text_fi, text_en, text_sv) VALUES (?,?,?,?,?,?)",
                [(_iso(at), s, k, fi, en, sv) for at, s, k, fi, en, sv in entries],
            )

    def recent_changes(self, limit: int = 50) -> list[Change]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, at, session, kind, text_fi, text_en, text_sv FROM changes "
                "ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [Change(r[0], _parse(r[1]), r[2], r[3], r[4], r[5], r[6]) for r in rows]

    # ----------------------------------------------------------- calendars

    def items(self, calendar: str) -> dict[str, Item]:
        with self._lock:
            rows = self._db.execute(
                "SELECT uid, href, etag, hash FROM items WHERE calendar=?", (calendar,)
            ).fetchall()
        return {r[0]: Item(r[0], r[1], r[2], r[3]) for r in rows}

    def put_item(self, calendar: str, item: Item) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)",
                (calendar, item.uid, item.href, item.etag, item.hash),
            )

    def drop_item(self, calendar: str, uid: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM items WHERE calendar=? AND uid=?", (calendar, uid))

    def calendars(self) -> dict[str, CalendarRecord]:
        """Every calendar we have written to, with how to reach it again to clean up."""
        with self._lock:
            rows = self._db.execute("SELECT calendar, mentor, target, url FROM calendars").fetchall()
        return {r[0]: CalendarRecord(r[0], r[1], json.loads(r[2]), r[3]) for r in rows}

    def calendar(self, key: str) -> CalendarRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT calendar, mentor, target, url FROM calendars WHERE calendar=?", (key,)
            ).fetchone()
        return CalendarRecord(row[0], row[1], json.loads(row[2]), row[3]) if row else None

    def set_calendar(self, record: CalendarRecord) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO calendars VALUES (?, ?, ?, ?)",
                (record.key, record.mentor, json.dumps(record.target, sort_keys=True), record.url),
            )

    def claim_calendar(self, record: CalendarRecord, same: Callable[[str, str], bool]) -> list[str]:
        """Record ``record`` and take over every other record of the same collection.

        Two target descriptions (a server root and a collection URL, say) can lead to
        one collection. The calendar is where it really is, not what it was called:
        the other record's events and foreign items move to ``record.key`` (ours
        win where both know a UID), and the other record goes, so that no cleanup
        job ever deletes from a collection a current job writes to. ``same(a, b)``
        tells whether two collection URLs name one collection. Returns the keys taken over.
        """
        taken: list[str] = []
        target = json.dumps(record.target, sort_keys=True)
        with self._lock:  # the common case, a calendar where it was, writes nothing
            rows = self._db.execute("SELECT calendar, mentor, target, url FROM calendars").fetchall()
        mine = [r for r in rows if r[0] == record.key]
        if (mine and mine[0][1:] == (record.mentor, target, record.url)
                and not any(r[0] != record.key and r[3] and record.url
                            and same(r[3], record.url) for r in rows)):
            return taken
        with self._tx() as db:
            rows = db.execute("SELECT calendar, url FROM calendars WHERE calendar != ?",
                              (record.key,)).fetchall()
            for other, url in rows:
                if url is None or record.url is None or not same(url, record.url):
                    continue
                db.execute("INSERT OR IGNORE INTO items SELECT ?, uid, href, etag, hash FROM items "
                           "WHERE calendar=?", (record.key, other))
                db.execute("INSERT OR IGNORE INTO foreign_items SELECT ?, href, etag FROM foreign_items "
                           "WHERE calendar=?", (record.key, other))
                for table in ("calendars", "items", "foreign_items"):
                    db.execute(f"DELETE FROM {table} WHERE calendar=?", (other,))  # noqa: S608
                taken.append(other)
            db.execute(
                "INSERT OR REPLACE INTO calendars VALUES (?, ?, ?, ?)",
                (record.key, record.mentor, json.dumps(record.target, sort_keys=True), record.url),
            )
        return taken

    def move_calendar(self, calendar: str, url: str) -> None:
        """The calendar now lives at ``url``: re-point its record and the hrefs of its items.

        For a server that moved whole collections (the embedded one, on upgrade): the
        resources keep their names and ETags, so the next listing matches them as known.
        """
        with self._tx() as db:
            row = db.execute("SELECT url FROM calendars WHERE calendar=?", (calendar,)).fetchone()
            if row is None:
                return
            old, new = urlsplit(row[0]).path, urlsplit(url).path
            db.execute("UPDATE calendars SET url=? WHERE calendar=?", (url, calendar))
            for table in ("items", "foreign_items"):
                db.execute(
                    f"UPDATE {table} SET href=? || substr(href, ?) "  # noqa: S608
                    "WHERE calendar=? AND substr(href, 1, ?)=?",
                    (new, len(old) + 1, calendar, len(old), old),
                )

    def forget_calendar(self, calendar: str) -> None:
        with self._tx() as db:
            for table in ("calendars", "items", "foreign_items"):
                db.execute(f"DELETE FROM {table} WHERE calendar=?", (calendar,))  # noqa: S608

    def foreign(self, calendar: str) -> dict[str, str | None]:
        """Resources in a calendar known not to be ours: href -> ETag when last read."""
        with self._lock:
            rows = self._db.execute(
                "SELECT href, etag FROM foreign_items WHERE calendar=?", (calendar,)
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def set_foreign(self, calendar: str, items: dict[str, str | None]) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM foreign_items WHERE calendar=?", (calendar,))
            db.executemany("INSERT INTO foreign_items VALUES (?, ?, ?)",
                           [(calendar, h, e) for h, e in items.items()])

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
