"""Answers: who is coming, as mentors said it by e-mail, in their calendar or on the page.

Every answer is kept (``answers``), keyed by where it came from (``source``), so reading
a mailbox or a calendar again, after a restart or a kill -9, records nothing twice; the
latest per mentor and session, by the answer's own time, is what the organisers see. The
IMAP reader's position (``reply_cursor``: UIDVALIDITY and the last UID handled) is written
in the same transaction as the answers read up to it, so a kill between the two can
neither lose an answer nor count one twice.

Why keep them all and not only the latest: a lost or rebuilt store is filled again from
the mailbox and the calendars, in whatever order they are read; with every answer and its
own time kept, the order of reading does not decide which one wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from klash_sync.state.db import Database, iso, parse_time
from klash_sync.state.records import ANSWERS, CHANNELS, Answer


def _answer(row: tuple[str, str, str, str, str, int, str, str]) -> Answer:
    mentor, session, answer, via, at, seq, source, comment = row
    return Answer(mentor, session, answer, via, parse_time(at), seq, source, comment)


class Answers(Database):
    """The store's answers and the mail reader's position."""

    # New answers recorded through this object since it was opened: what the daemon's parts
    # (the late-decline mail) watch to learn of a new answer without asking the database on
    # every turn of the main loop. Every writer of answers in the daemon shares its store.
    answers_recorded = 0

    def record_answers(self, answers: Iterable[Answer], now: datetime, *,
                       cursor: tuple[str, int, int] | None = None) -> list[Answer]:
        """Keep the answers whose source is new; return those. ``cursor`` (mailbox,
        UIDVALIDITY, last UID) is moved in the same transaction."""
        new: list[Answer] = []
        with self._tx() as db:
            for a in answers:
                if a.answer not in ANSWERS or a.via not in CHANNELS:
                    raise ValueError(f"not an answer: {a.answer!r} via {a.via!r}")
                done = db.execute(
                    "INSERT OR IGNORE INTO answers (mentor, session, answer, via, at, for_sequence, source, "
                    "comment, recorded) VALUES (?,?,?,?,?,?,?,?,?)",
                    (a.mentor, a.session, a.answer, a.via, iso(a.at), a.for_sequence, a.source,
                     a.comment, iso(now)))
                if done.rowcount:
                    new.append(a)
            if cursor is not None:
                mailbox, validity, last = cursor
                db.execute("INSERT OR REPLACE INTO reply_cursor VALUES (?, ?, ?)",
                           (mailbox, validity, last))
        self.answers_recorded += len(new)
        return new

    def all_answers(self) -> list[Answer]:
        """Every answer kept, oldest first (by the answer's own time, then as recorded)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT mentor, session, answer, via, at, for_sequence, source, comment FROM answers "
                "ORDER BY at, rowid").fetchall()
        return [_answer(r) for r in rows]

    def latest_answers(self) -> dict[tuple[str, str], Answer]:
        """Per (mentor, session), the answer with the latest own time; of equal times, the
        one recorded last."""
        latest: dict[tuple[str, str], Answer] = {}
        for a in self.all_answers():
            latest[(a.mentor, a.session)] = a
        return latest

    def reply_cursor(self, mailbox: str) -> tuple[int, int] | None:
        """(UIDVALIDITY, last UID handled) of ``mailbox``, or None if never read."""
        with self._lock:
            row = self._db.execute(
                "SELECT uidvalidity, last_uid FROM reply_cursor WHERE mailbox=?", (mailbox,)
            ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))
