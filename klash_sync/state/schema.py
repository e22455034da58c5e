"""The state database's tables, and the upgrade of stores made by older releases.

One place for the SQL that every other module of ``state`` reads and writes. Parts
above that keep their own records in the same file (the invitations' outbox) add
their tables through ``Store.add_schema``, not here.
"""

from __future__ import annotations

import sqlite3

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
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def prepare(db: sqlite3.Connection) -> None:
    """Create missing tables and add the columns that older stores lack."""
    db.executescript(SCHEMA)
    columns = {row[1] for row in db.execute("PRAGMA table_info(sessions)")}
    if "summary" not in columns:  # stores made before the change log existed
        db.execute("ALTER TABLE sessions ADD COLUMN summary TEXT")
    if "text_sv" not in {row[1] for row in db.execute("PRAGMA table_info(changes)")}:
        db.execute("ALTER TABLE changes ADD COLUMN text_sv TEXT NOT NULL DEFAULT ''")  # before Swedish
