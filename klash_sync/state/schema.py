"""The state database's tables, its schema version, and the upgrade of older stores.

One place for the SQL that every other module of ``state`` reads and writes. Parts
above that keep their own records in the same file (the invitations' outbox, the
backoff) add their tables through ``Store.add_schema``, not here; a change to one is a
new version here too, with its step (the outbox's, keyed by address, is version 6).

**The version** is SQLite's ``PRAGMA user_version`` (four bytes in the file's header,
written in the same transaction as the tables, and readable from the header alone
without opening the file for writing). Stores made before it was recorded carry 0;
their version is read from their shape instead (``migrations.shipped``). A store
marked newer than ``VERSION`` is refused (``NewerSchema``), never changed; an older
one is brought up to ``VERSION`` by the steps in ``migrations.STEPS`` in one
transaction, after the caller has kept a copy (``keep``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from klash_sync.state.migrations import STEPS, shipped, statements

# The schema this code reads and writes. 1 to 4 shipped unmarked (see migrations.py);
# 5 is the first that records itself; 6 keys the invitations' outbox by address. A change
# to any table: VERSION + 1, one more step. 7 keeps mentors' answers (``state/answers``).
VERSION = 7

SCHEMA = """
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
CREATE TABLE IF NOT EXISTS answers (
    source TEXT PRIMARY KEY,
    mentor TEXT NOT NULL,
    session TEXT NOT NULL,
    answer TEXT NOT NULL,
    via TEXT NOT NULL,
    at TEXT NOT NULL,
    for_sequence INTEGER NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    recorded TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reply_cursor (
    mailbox TEXT PRIMARY KEY,
    uidvalidity INTEGER NOT NULL,
    last_uid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class NewerSchema(Exception):
    """The store was written by a newer klash-sync; ``found`` is its version."""

    def __init__(self, found: int) -> None:
        super().__init__(f"schema {found}, this code knows {VERSION}")
        self.found = found


def found_version(db: sqlite3.Connection) -> int:
    """The store's version: recorded, or read from its shape; 0 for a store not yet made."""
    recorded = int(db.execute("PRAGMA user_version").fetchone()[0])
    return recorded or shipped(db)


def prepare(db: sqlite3.Connection, keep: Callable[[int], object] | None = None) -> int:
    """Bring the store to ``VERSION``; the version it had. Raises ``NewerSchema``.

    A store at ``VERSION`` is only read. An older one is first handed to ``keep`` (the
    copy beside the file) and then migrated in one transaction: a failure or a kill
    leaves it as it was, copy and all. A store not yet made (version 0: no table at
    all) is created at ``VERSION``.
    """
    found = found_version(db)
    if found > VERSION:
        raise NewerSchema(found)
    if found == VERSION:
        return found
    if found and keep is not None:
        keep(found)
    db.execute("BEGIN IMMEDIATE")
    try:
        found = found_version(db)  # under the write lock: what is there now
        if found > VERSION:
            raise NewerSchema(found)
        for step in STEPS[found - 1:VERSION - 1] if found else ():
            step(db)
        for sql in statements(SCHEMA):  # what is still missing, in this version's shape
            db.execute(sql)
        db.execute(f"PRAGMA user_version = {VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return found
