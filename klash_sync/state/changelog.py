"""The change log: what changed in the programme, in words, as people read it on the page
and in the Atom feed. Appended by the service after each applied programme version."""

from __future__ import annotations

from datetime import datetime

from klash_sync.state.db import Database, iso, parse_time
from klash_sync.state.records import Change


class ChangeLog(Database):
    """The store's change log: entries appended, the latest read back."""

    def add_changes(self, entries: list[tuple[datetime, str, str, str, str, str]]) -> None:
        """Append (at, session, kind, text_fi, text_en, text_sv) entries to the change log."""
        if not entries:
            return
        with self._tx() as db:
            db.executemany(
                "INSERT INTO changes (at, session, kind, text_fi, text_en, text_sv) VALUES (?,?,?,?,?,?)",
                [(iso(at), s, k, fi, en, sv) for at, s, k, fi, en, sv in entries],
            )

    def recent_changes(self, limit: int = 50) -> list[Change]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, at, session, kind, text_fi, text_en, text_sv FROM changes "
                "ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [Change(r[0], parse_time(r[1]), r[2], r[3], r[4], r[5], r[6]) for r in rows]
