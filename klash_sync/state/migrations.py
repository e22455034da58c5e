"""Upgrading a store made by an older release: its version, the steps, the copy kept.

Releases before schema 5 did not record a version; each left a store of its own
shape, found in the repository's history (``klash_sync/state.py`` before the move
into ``state/``, then ``state/schema.py``):

=====  ==========  ==============================================================
  1    ``236f5ea`` the first: ``calendars`` keyed by URL and ctag, nothing else
  2    ``c0d7139`` CalDAV push: ``calendars`` (mentor, target, url), ``foreign_items``
  3    ``1e4ec5d`` the page and its change log: ``sessions.summary``
                   (``443571d``, the release the upgrade test installs, is one)
  4    ``10d0464`` Swedish: ``changes.text_sv``
  5    ``5ee028b`` the same tables as 4; the version is recorded (``user_version``)
  6    ``d32fdd1`` the invitations' outbox (``deliver/invite/outbox``) per address:
                   ``invite_sent`` and ``invite_pending`` keyed by (address, session),
                   addresses in lower case; ``invite_sent.attendees``, ``.organiser``
  7    this one    mentors' answers (``answers``) and the mail reader's position
                   (``reply_cursor``): new tables only (``state/answers``)
=====  ==========  ==============================================================

``shipped`` tells them apart by shape. ``STEPS[n - 1]`` takes a store from version n to
n + 1; ``schema.prepare`` runs the ones needed in one transaction, then creates the tables
still missing in this version's shape. Each step only changes what is there and not yet
in its shape, so a store that an older release half-upgraded on its own (it created
missing tables and columns as it went) goes through the same steps. Nothing is dropped
that holds a row.

``keep_copy`` makes the copy beside the file before any step runs, with SQLite's backup
API, so the copy is one consistent moment even with a WAL beside the file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def statements(script: str) -> list[str]:
    """The statements of a schema script, to run one by one inside a transaction
    (``executescript`` would commit first)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _tables(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def shipped(db: sqlite3.Connection) -> int:
    """The version of a store that does not record one, from its shape; 0: nothing made yet.

    A table missing from a shape counts as older (the steps and ``schema.SCHEMA`` make it).
    """
    tables = _tables(db)
    if not tables:
        return 0
    if "mentor" not in columns(db, "calendars") or "foreign_items" not in tables:
        return 1
    if "summary" not in columns(db, "sessions"):
        return 2
    if "text_sv" not in columns(db, "changes"):
        return 3
    return 4


# ------------------------------------------------------------------ steps


def _to_2(db: sqlite3.Connection) -> None:
    """A calendar is a mentor's target (mentor, target, url); others' resources are remembered.

    The first release never wrote a calendar (it did not sync), so its ``calendars`` table is
    empty and is replaced; one with rows all the same is kept whole as ``calendars_v1``.
    """
    found = columns(db, "calendars")
    if found and "mentor" not in found:
        rows = db.execute("SELECT COUNT(*) FROM calendars").fetchone()[0]
        db.execute("ALTER TABLE calendars RENAME TO calendars_v1" if rows else "DROP TABLE calendars")
    db.execute("CREATE TABLE IF NOT EXISTS calendars (calendar TEXT PRIMARY KEY, "
               "mentor TEXT NOT NULL, target TEXT NOT NULL, url TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS foreign_items (calendar TEXT NOT NULL, "
               "href TEXT NOT NULL, etag TEXT, PRIMARY KEY (calendar, href))")


def _to_3(db: sqlite3.Connection) -> None:
    """The change log names each session: its title is kept with it."""
    found = columns(db, "sessions")
    if found and "summary" not in found:
        db.execute("ALTER TABLE sessions ADD COLUMN summary TEXT")


def _to_4(db: sqlite3.Connection) -> None:
    """The change log in Swedish too; older entries have none."""
    found = columns(db, "changes")
    if found and "text_sv" not in found:
        db.execute("ALTER TABLE changes ADD COLUMN text_sv TEXT NOT NULL DEFAULT ''")


def _to_5(db: sqlite3.Connection) -> None:
    """No table changes: from 5 on, the store records its version (set by ``prepare``)."""


def _to_6(db: sqlite3.Connection) -> None:
    """The outbox per address, not per mentor: a calendar is an address's, so a mentor's
    change of address leaves copies at the old one that must be cancelled there.

    Each table is rebuilt with the new key (SQLite cannot change a primary key in place).
    Two mentors who shared one address before (``validate`` refuses that from now on) had
    one row each; the one with the higher SEQUENCE is kept, as it is what their calendar
    last accepted. A store whose outbox was never made has nothing to rebuild (the outbox
    makes its tables in this shape when it first opens)."""
    tables = _tables(db)
    if "invite_sent" in tables and "attendees" not in columns(db, "invite_sent"):
        db.execute("ALTER TABLE invite_sent RENAME TO invite_sent_v5")
        db.execute(
            "CREATE TABLE invite_sent (mentor TEXT NOT NULL, session TEXT NOT NULL, "
            "address TEXT NOT NULL, sequence INTEGER NOT NULL, hash TEXT NOT NULL, "
            "method TEXT NOT NULL, event BLOB NOT NULL, ends TEXT NOT NULL, sent_at TEXT NOT NULL, "
            "attendees TEXT NOT NULL DEFAULT '', organiser TEXT NOT NULL DEFAULT '', "
            "PRIMARY KEY (address, session))")
        db.execute("INSERT OR REPLACE INTO invite_sent (mentor, session, address, sequence, hash, "
                   "method, event, ends, sent_at) SELECT mentor, session, lower(address), sequence, "
                   "hash, method, event, ends, sent_at FROM invite_sent_v5 ORDER BY sequence")
        db.execute("DROP TABLE invite_sent_v5")
    if "invite_pending" in tables and _key(db, "invite_pending") != ["address", "session"]:
        db.execute("ALTER TABLE invite_pending RENAME TO invite_pending_v5")
        db.execute(
            "CREATE TABLE invite_pending (mentor TEXT NOT NULL, session TEXT NOT NULL, "
            "sequence INTEGER NOT NULL, hash TEXT NOT NULL, method TEXT NOT NULL, "
            "state TEXT NOT NULL, address TEXT NOT NULL, event BLOB NOT NULL, ends TEXT NOT NULL, "
            "attempts INTEGER NOT NULL DEFAULT 0, next_try TEXT, answer TEXT, since TEXT NOT NULL, "
            "PRIMARY KEY (address, session))")
        db.execute("INSERT OR REPLACE INTO invite_pending SELECT mentor, session, sequence, hash, "
                   "method, state, lower(address), event, ends, attempts, next_try, answer, since "
                   "FROM invite_pending_v5 ORDER BY sequence")
        db.execute("DROP TABLE invite_pending_v5")


def _to_7(db: sqlite3.Connection) -> None:
    """Mentors' answers and the mail reader's position: two new tables, nothing else
    changes; ``schema.prepare`` makes them from ``SCHEMA`` after the steps."""


def _key(db: sqlite3.Connection, table: str) -> list[str]:
    """A table's primary key columns, in order."""
    rows = sorted((r[5], r[1]) for r in db.execute(f"PRAGMA table_info({table})") if r[5])
    return [name for _, name in rows]


STEPS: list[Callable[[sqlite3.Connection], None]] = [_to_2, _to_3, _to_4, _to_5, _to_6, _to_7]


# ------------------------------------------------------------------- copy


def copy_into(source: sqlite3.Connection, target: sqlite3.Connection) -> None:
    """``source``'s database into ``target``, as of one moment.

    The read transaction is taken first, so a database locked by another program fails
    after the connection's busy timeout (``database is locked``) instead of in Python's
    ``backup()``, which retries a busy source for ever.
    """
    source.execute("BEGIN")
    try:
        source.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        source.backup(target)
    finally:
        source.execute("ROLLBACK")


def keep_copy(db: sqlite3.Connection, path: Path, found: int) -> Path:
    """Copy the store at ``path`` (open as ``db``) to ``<name>.schema-<found>.bak`` beside it.

    Never over an earlier copy (a second attempt gets ``.bak-2``, …); written to a
    temporary name first and renamed, so a copy under the final name is complete. 0600:
    it holds what the store holds (mentors' addresses).
    """
    n = 1
    copy = path.with_name(f"{path.name}.schema-{found}.bak")
    while copy.exists():
        n += 1
        copy = path.with_name(f"{path.name}.schema-{found}.bak-{n}")
    tmp = path.with_name(f".{copy.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    try:
        target = sqlite3.connect(tmp, isolation_level=None)
        try:
            copy_into(db, target)
            target.execute("PRAGMA journal_mode=DELETE")  # one file: no -wal beside the copy
        finally:
            target.close()
        os.replace(tmp, copy)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no half copy left; the store itself is not touched yet
        raise
    log.info("the state store %s has schema %d; kept a copy as %s before upgrading it",
             path, found, copy)
    return copy
