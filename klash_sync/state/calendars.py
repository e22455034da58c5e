"""Calendars we write to: their records, our events on each, and the resources not ours.

Per calendar, the href, ETag and content hash the server gave back for each of our
events (so a no-op sync costs one request), how to reach the calendar again to clean
up (no secrets), and the ETags of foreign resources (so they are not re-read).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlsplit

from klash_sync.state.db import Database
from klash_sync.state.records import CalendarRecord, Item


class Calendars(Database):
    """The store's calendar records, their items and their foreign resources."""

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
