"""The state store: what klash-sync remembers between runs, in one SQLite file.

It keeps, per session, the content fingerprint, SEQUENCE and when it last changed
(so feeds are deterministic and a reschedule raises SEQUENCE); per feed, its ETag
and when its bytes last changed (Last-Modified); per calendar and event, the href,
ETag and content hash the server gave back (so a no-op sync costs one request);
and the log of applied changes shown to people.

SQLite in WAL mode commits atomically, so a kill -9 at any moment leaves either
the old or the new state, and the next start uses it as it is. A store that is
missing or unreadable is not fatal: syncing reconciles with what the servers hold
by UID and the marker property, so the worst case is one slower sync.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from .ical import Revision

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
    text_en TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


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
    previous: dict[str, dict | None]  # summaries of changed and removed sessions, before
    first: bool  # the store knew no sessions: this is the initial import


@dataclass(frozen=True)
class CalendarRecord:
    """A calendar we write to: its key, its mentor, how to reach it (no secrets), its URL."""

    key: str
    mentor: str
    target: dict
    url: str | None


@dataclass(frozen=True)
class Change:
    seq: int
    at: datetime
    session: str
    kind: str
    text_fi: str
    text_en: str


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


class Store:
    """Thread-safe access to the state database; every method is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = self._open(path)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(sessions)")}
        if "summary" not in columns:  # stores made before the change log existed
            db.execute("ALTER TABLE sessions ADD COLUMN summary TEXT")
        return db

    def _open(self, path: Path) -> sqlite3.Connection:
        try:
            return self._connect(path)
        except sqlite3.DatabaseError as e:
            # A truncated or foreign file: keep it for inspection, start afresh. Syncs
            # reconcile by UID with the servers, so nothing is lost but one fast path.
            aside = path.with_name(path.name + ".corrupt")
            log.warning("state store %s is unreadable (%s); moved to %s and starting afresh",
                        path, e, aside)
            path.replace(aside)
            for suffix in ("-wal", "-shm"):
                side = path.with_name(path.name + suffix)
                side.unlink(missing_ok=True)
            return self._connect(path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ------------------------------------------------------------ sessions

    def revise(
        self, fingerprints: Mapping[str, str], now: datetime,
        summaries: Mapping[str, dict] | None = None,
    ) -> Revised:
        """Record the programme's sessions; return each one's revision and what happened.

        A session whose fingerprint changed gets SEQUENCE + 1 and ``changed = now``; a
        new one starts at 0; one that disappeared is marked removed but remembered, so
        that if it comes back its SEQUENCE keeps rising (clients ignore lower ones).
        ``summaries`` (what people notice about each session) are kept so that the next
        version can be described in words against this one.
        """
        stamp = _iso(now)
        summaries = summaries or {}
        result = Revised({}, {}, {}, first=False)
        with self._tx() as db:
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
                    db.execute(
                        "INSERT INTO sessions VALUES (?, ?, 0, ?, ?, NULL, ?)",
                        (sid, digest, stamp, stamp, text),
                    )
                    result.revisions[sid] = Revision(0, _parse(stamp), _parse(stamp))
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

    # --------------------------------------------------------------- feeds

    def feeds_changed(self, etags: Mapping[str, str], now: datetime) -> dict[str, datetime]:
        """When each feed's bytes last changed: now where its ETag is new, else as stored.

        One transaction for all feeds: a programme has a feed per mentor.
        """
        stamp = _iso(now)
        result: dict[str, datetime] = {}
        with self._tx() as db:
            known = {r[0]: (r[1], r[2]) for r in db.execute("SELECT name, etag, changed FROM feeds")}
            for name, etag in etags.items():
                old = known.get(name)
                if old is not None and old[0] == etag:
                    result[name] = _parse(old[1])
                    continue
                db.execute("INSERT OR REPLACE INTO feeds VALUES (?, ?, ?)", (name, etag, stamp))
                result[name] = _parse(stamp)
        return result

    # ------------------------------------------------------------- changes

    def add_changes(self, entries: list[tuple[datetime, str, str, str, str]]) -> None:
        """Append (at, session, kind, text_fi, text_en) entries to the change log."""
        if not entries:
            return
        with self._tx() as db:
            db.executemany(
                "INSERT INTO changes (at, session, kind, text_fi, text_en) VALUES (?,?,?,?,?)",
                [(_iso(at), s, k, fi, en) for at, s, k, fi, en in entries],
            )

    def recent_changes(self, limit: int = 50) -> list[Change]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, at, session, kind, text_fi, text_en FROM changes "
                "ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [Change(r[0], _parse(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

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
