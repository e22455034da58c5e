"""The change log: what changed in the programme, in words, as people read it on the page
and in the Atom feed. Appended by the service after each applied programme version."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime

from klash_sync.state.db import Database, iso, parse_time
from klash_sync.state.records import Change

Entry = tuple[datetime, str, str, str, str, str]  # (at, session, kind, text_fi, text_en, text_sv)


def insert_changes(db: sqlite3.Connection, entries: Iterable[Entry]) -> None:
    """Append entries inside the caller's transaction (the revision they describe is in it too)."""
    db.executemany(
        "INSERT INTO changes (at, session, kind, text_fi, text_en, text_sv) VALUES (?,?,?,?,?,?)",
        [(iso(at), s, k, fi, en, sv) for at, s, k, fi, en, sv in entries],
    )


class ChangeLog(Database):
    """The store's change log: entries appended, the latest read back."""

    def recent_changes(self, limit: int = 50) -> list[Change]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, at, session, kind, text_fi, text_en, text_sv FROM changes "
                "ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [Change(r[0], parse_time(r[1]), r[2], r[3], r[4], r[5], r[6]) for r in rows]
