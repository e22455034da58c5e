"""Every state store schema that has shipped is upgraded in place, nothing lost, a copy kept.

The shipped schemas are read from this repository's history (``klash_sync/state.py``
before the move, then ``klash_sync/state/schema.py``), not copied into the test: each
distinct one before the version was recorded is a store some installation may hold.
Each is built from that release's own SQL on a real file, filled with a row in every
table, and opened by this code. A store marked newer than this code is refused and
left byte for byte as it was, also with its last transaction still in the WAL.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from klash_sync.errors import StateError
from klash_sync.state.migrations import STEPS
from klash_sync.state.schema import VERSION
from klash_sync.state.store import Store
from tests.fixtures.store_history import build_store, shipped_schemas

SHIPPED = shipped_schemas()


def test_every_shipped_schema_is_known():
    # 236f5ea, c0d7139, 1e4ec5d, 10d0464: versions 1 to 4; this code is the first to record one.
    assert [c for c, _ in SHIPPED][:4] == ["236f5ea", "c0d7139", "1e4ec5d", "10d0464"], SHIPPED
    assert len(SHIPPED) == 4  # 5 on record their version and are upgraded by the steps alone
    assert len(STEPS) == VERSION - 1  # one step per version


def columns(db: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    return [(r[1], r[2]) for r in db.execute(f"PRAGMA table_info({table})")]


def tables(db: sqlite3.Connection) -> list[str]:
    return sorted(r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"))


def rows(path: Path) -> dict[str, list[dict[str, object]]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        found = {}
        for table in tables(db):
            names = [c for c, _ in columns(db, table)]
            found[table] = [dict(zip(names, r, strict=True))
                            for r in db.execute(f"SELECT * FROM {table} ORDER BY rowid")]
        return found
    finally:
        db.close()


MOMENTS = {"at", "created", "changed", "removed", "ends", "sent_at", "since", "ready_at", "next_try"}


def build(path: Path, sql: str) -> dict[str, list[dict[str, object]]]:
    """A store as that release made it (WAL, its tables), with one row in every table."""
    build_store(path, sql)
    db = sqlite3.connect(path, isolation_level=None)
    for table in tables(db):
        cols = columns(db, table)
        values = [7 if kind == "INTEGER" else b"\x00blob" if kind == "BLOB"
                  else "2019-10-01T10:00:00+00:00" if name in MOMENTS else f"{table}.{name}"
                  for name, kind in cols]
        db.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})", values)
    db.close()
    return rows(path)


def user_version(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


@pytest.mark.parametrize("version", range(1, len(SHIPPED) + 1))
def test_a_shipped_store_is_upgraded_with_nothing_lost_and_a_copy_kept(tmp_path, version):
    commit, sql = SHIPPED[version - 1]
    path = tmp_path / "state" / "state.sqlite3"
    path.parent.mkdir()
    before = build(path, sql)
    fresh = tmp_path / "fresh" / "state.sqlite3"
    Store(fresh).close()

    store = Store(path)
    store.close()

    assert user_version(path) == VERSION
    after = rows(path)
    expected = rows(fresh)
    # The same tables, each with this version's columns, as a store made new.
    mine = sqlite3.connect(path)
    new = sqlite3.connect(fresh)
    for table in tables(new):
        assert columns(mine, table) == columns(new, table), (commit, table)
    mine.close()
    new.close()
    assert set(expected) <= set(after)
    # Every row is still there, every value as it was; columns added since are empty.
    for table, old_rows in before.items():
        if table == "calendars" and "mentor" not in old_rows[0]:
            table_after = after["calendars_v1"]  # the first release's shape, kept whole
        else:
            table_after = after[table]
        assert len(table_after) == len(old_rows), (commit, table)
        for old, now in zip(old_rows, table_after, strict=True):
            assert {k: now[k] for k in old} == old, (commit, table)
            assert all(now[k] in (None, "") for k in set(now) - set(old)), (commit, table, now)
    # The copy beside it is the store as it was, whole.
    copy = path.with_name(f"state.sqlite3.schema-{version}.bak")
    assert rows(copy) == before
    assert user_version(copy) == 0
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    # Usable: what was recorded reads back, and opening it again copies nothing more.
    again = Store(path)
    assert [c.session for c in again.recent_changes()] == ["changes.session"]
    assert again.get("kv.key") == "kv.value"
    again.close()
    assert sorted(p.name for p in path.parent.iterdir() if ".bak" in p.name) == [copy.name]


def test_the_read_only_copy_upgrades_in_memory_and_writes_nothing(tmp_path):
    path = tmp_path / "state.sqlite3"
    build(path, SHIPPED[0][1])
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.name.endswith("-shm")}
    store = Store.readonly(path)
    assert [c.session for c in store.recent_changes()] == ["changes.session"]
    assert store.calendars() == {}  # this version's table; the first release's row aside
    with store.reading() as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION
        assert db.execute("SELECT url FROM calendars_v1").fetchall() == [("calendars.url",)]
    store.close()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()
            if not p.name.endswith("-shm")} == files  # no copy either: nothing was upgraded on disk


@pytest.mark.parametrize("wal", [False, True], ids=["closed", "in-the-wal"])
def test_a_store_from_a_newer_release_is_refused_and_left_as_it_is(tmp_path, wal):
    path = tmp_path / "state.sqlite3"
    Store(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA user_version = 99")  # committed; with a holder open it stays in the WAL
    holder.execute("CREATE TABLE from_the_future (x TEXT)")
    if not wal:
        holder.close()
    try:
        files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.name.endswith("-shm")}
        assert any(n.endswith("-wal") for n in files) == wal
        for opening in (Store, Store.readonly):
            with pytest.raises(StateError) as refused:
                opening(path)
            message = str(refused.value)
            assert f"the state in {tmp_path} was written by a newer klash-sync (schema 99, " \
                   f"this one knows {VERSION})" in message
            assert "\n" not in message
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()
                if not p.name.endswith("-shm")} == files
    finally:
        holder.close()


def test_an_upgrade_that_fails_leaves_the_store_as_it_was(tmp_path):
    """One transaction: an upgrade that cannot finish (the first release's calendars, with rows,
    and a table already named as the one they would be kept in) leaves nothing of itself."""
    path = tmp_path / "state.sqlite3"
    before = build(path, SHIPPED[0][1])
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE calendars_v1 (x TEXT)")
    db.commit()
    db.close()
    before = rows(path)
    with pytest.raises(StateError) as failed:
        Store(path)
    assert f"the state database {path} could not be upgraded to schema {VERSION}" in str(failed.value)
    assert "\n" not in str(failed.value)
    assert rows(path) == before
    assert user_version(path) == 0
    assert rows(path.with_name("state.sqlite3.schema-1.bak")) == before


# The invitations' outbox as schema 5 (5ee028b) made it: keyed by (mentor, session).
OUTBOX_5 = """
CREATE TABLE invite_sent (mentor TEXT NOT NULL, session TEXT NOT NULL, address TEXT NOT NULL,
    sequence INTEGER NOT NULL, hash TEXT NOT NULL, method TEXT NOT NULL, event BLOB NOT NULL,
    ends TEXT NOT NULL, sent_at TEXT NOT NULL, PRIMARY KEY (mentor, session));
CREATE TABLE invite_pending (mentor TEXT NOT NULL, session TEXT NOT NULL,
    sequence INTEGER NOT NULL, hash TEXT NOT NULL, method TEXT NOT NULL, state TEXT NOT NULL,
    address TEXT NOT NULL, event BLOB NOT NULL, ends TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_try TEXT, answer TEXT, since TEXT NOT NULL,
    PRIMARY KEY (mentor, session));
"""


def test_a_schema_5_outbox_is_kept_per_address(tmp_path):
    from klash_sync.deliver.invite.outbox import Outbox
    from klash_sync.state.schema import SCHEMA

    path = tmp_path / "state.sqlite3"
    build_store(path, SCHEMA + OUTBOX_5)
    db = sqlite3.connect(path, isolation_level=None)
    at = "2030-01-01T10:00:00+00:00"
    for mentor, address, sequence in (("milja", "Milja@Example.test", 5), ("team-a", "team@x.test", 3),
                                      ("team-b", "team@x.test", 4)):
        db.execute("INSERT INTO invite_sent VALUES (?,?,?,?,?,?,?,?,?)",
                   (mentor, "s1", address, sequence, "h", "REQUEST", b"EV", at, at))
    db.execute("INSERT INTO invite_pending VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
               ("milja", "s2", 9, "h", "REQUEST", "retry", "Milja@Example.test", b"EV", at, 1, at,
                "451 later", at))
    db.execute("PRAGMA user_version = 5")
    db.close()
    store = Store(path)
    outbox = Outbox(store)
    sent, pending = outbox.sent(), outbox.pending()
    store.close()
    assert user_version(path) == VERSION
    assert sorted((k, v.mentor, v.sequence) for k, v in sent.items()) == [
        (("milja@example.test", "s1"), "milja", 5),
        (("team@x.test", "s1"), "team-b", 4)]  # one calendar: the copy it accepted last
    assert [(k, v.state, v.attempts, v.answer) for k, v in pending.items()] == [
        (("milja@example.test", "s2"), "retry", 1, "451 later")]
    assert path.with_name("state.sqlite3.schema-5.bak").exists()


def _shipped_sql(commit: str, name: str, variable: str) -> str:
    """A schema script as the release at ``commit`` had it (from this repository's history)."""
    import re
    import subprocess

    from tests.fixtures.common import ROOT
    shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{name}"], capture_output=True,
                           text=True, timeout=60, check=True).stdout
    m = re.search(rf'^{variable} = """(.*?)"""', shown, re.S | re.M)
    assert m, (commit, name)
    return m.group(1)


def test_a_schema_6_store_gets_the_answers_tables_with_nothing_lost(tmp_path):
    # d32fdd1 is the last release of schema 6: its store and its outbox, as that release made them
    sql = (_shipped_sql("d32fdd1", "klash_sync/state/schema.py", "SCHEMA")
           + _shipped_sql("d32fdd1", "klash_sync/deliver/invite/outbox.py", "_SCHEMA"))
    path = tmp_path / "state.sqlite3"
    build_store(path, sql)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("INSERT INTO sessions VALUES ('s1', 'h', 190000000, '2026-01-01T00:00:00+00:00', "
               "'2026-01-01T00:00:00+00:00', NULL, '{}')")
    db.execute("INSERT INTO invite_sent VALUES ('milja', 's1', 'milja@x.test', 190000000, 'h', "
               "'REQUEST', x'4556', '2030-01-01T10:00:00+00:00', '2026-01-01T00:00:00+00:00', "
               "'milja@x.test', 'org@x.test')")
    db.execute("PRAGMA user_version = 6")
    db.close()
    assert "answers" not in sql
    assert "reply_cursor" not in sql
    store = Store(path)
    assert store.revise({"s1": "h"}, now=datetime(2026, 2, 1, tzinfo=UTC)).revisions["s1"].sequence \
        == 190000000
    assert store.latest_answers() == {}
    assert store.reply_cursor("imap://o@x/INBOX") is None
    store.close()
    assert user_version(path) == VERSION == 7
    db = sqlite3.connect(path)
    assert db.execute("SELECT mentor, address, organiser FROM invite_sent").fetchall() == [
        ("milja", "milja@x.test", "org@x.test")]
    db.close()
    assert path.with_name("state.sqlite3.schema-6.bak").exists()
