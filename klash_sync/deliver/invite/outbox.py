"""The outbox: what each invited mentor was last sent, and what is on its way, in the state DB.

Two tables beside the store's own, in the same SQLite file, through a connection of
their own (WAL lets both write safely), so the invitation channel needs nothing from
the store's internals:

* ``invite_sent``: per (address, session) the last message an SMTP server accepted:
  whose mailbox it is, SEQUENCE, content hash, METHOD, the VEVENT (to cancel it later
  by name), when the session ends as sent (a copy that is still upcoming is kept right),
  when it was sent, the attendees it named and the organiser it came from. Per address,
  not per mentor, because a calendar is an address's: a mentor whose address changes
  leaves copies at the old one, and those get their CANCELs (schema 6; see
  ``state/migrations``). Addresses are kept in lower case: one mailbox, one key.
* ``invite_pending``: per (address, session) the message recorded *before* it is handed
  to the SMTP server, with its state: ``sending``, ``retry`` (a 4xx answer or no
  server: tried again after a backoff) or ``failed`` (a 5xx answer: shown, not retried
  with the same content).

Beside them, in the store's free-form ``kv`` table, the name each address was last
mailed under (``invite.name:ADDRESS``), so that a mentor who has left is named, not
addressed bare, in the CANCELs of what they hold.

The order of writes is what makes a kill -9 harmless: pending first, then SMTP, then
sent-and-not-pending in one transaction. A kill after the server accepted a message
but before the second write leaves it pending with the same SEQUENCE, so it is sent
once more, identical (clients take it as the same invitation); a newer version always
gets a higher SEQUENCE than anything recorded, pending or sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from klash_sync.deliver.invite.items import Invitation, Pending, Sent
from klash_sync.state.backoff import delay
from klash_sync.state.store import Store

RETRY_BASE = 30.0  # seconds before a message refused with 4xx is tried again, at first
NAME_KEY = "invite.name:"  # + address, in the store's kv table: the name last mailed there

_SCHEMA = """
CREATE TABLE IF NOT EXISTS invite_sent (
    mentor TEXT NOT NULL,
    session TEXT NOT NULL,
    address TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    hash TEXT NOT NULL,
    method TEXT NOT NULL,
    event BLOB NOT NULL,
    ends TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    attendees TEXT NOT NULL DEFAULT '',
    organiser TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (address, session)
);
CREATE TABLE IF NOT EXISTS invite_pending (
    mentor TEXT NOT NULL,
    session TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    hash TEXT NOT NULL,
    method TEXT NOT NULL,
    state TEXT NOT NULL,
    address TEXT NOT NULL,
    event BLOB NOT NULL,
    ends TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try TEXT,
    answer TEXT,
    since TEXT NOT NULL,
    PRIMARY KEY (address, session)
);
"""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


@dataclass
class MentorOutbox:
    """One mentor's line on /healthz, /metrics and the status page."""

    mentor: str
    sent: int = 0
    pending: int = 0
    failed: int = 0
    answer: str | None = None  # the SMTP server's one-line answer to the last failure
    failing_since: datetime | None = None
    last_sent: datetime | None = None  # when an SMTP server last accepted a message for them
    sessions: list[str] = field(default_factory=list)  # sessions pending or failed


class Outbox:
    """Reads and writes the two invitation tables; every method is one transaction.

    The tables live in the state store and go through its connection, so the store's
    rules hold here too: one writer per state directory, errors as one line, and a
    read-only copy in memory for the preview of a recorded programme (writes nothing).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        store.add_schema(_SCHEMA)

    def close(self) -> None:
        """Nothing of its own to close: the store belongs to the caller."""

    # ---------------------------------------------------------------- reads

    def sent(self) -> dict[tuple[str, str], Sent]:
        with self.store.reading() as db:
            rows = db.execute(
                "SELECT mentor, session, address, sequence, hash, method, event, ends, attendees, "
                "organiser, sent_at FROM invite_sent"
            ).fetchall()
        return {(r[2], r[1]): Sent(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6]),
                                   datetime.fromisoformat(r[7]),
                                   tuple(a for a in r[8].split(" ") if a), r[9],
                                   datetime.fromisoformat(r[10])) for r in rows}

    def pending(self) -> dict[tuple[str, str], Pending]:
        with self.store.reading() as db:
            rows = db.execute(
                "SELECT mentor, session, sequence, hash, method, state, address, event, ends, "
                "attempts, next_try, answer FROM invite_pending"
            ).fetchall()
        return {(r[6], r[1]): Pending(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bytes(r[7]),
                                      datetime.fromisoformat(r[8]), r[9],
                                      datetime.fromisoformat(r[10]) if r[10] else None, r[11])
                for r in rows}

    def next_retry(self) -> datetime | None:
        """The earliest moment a message waiting out a 4xx answer may be tried again."""
        with self.store.reading() as db:
            row = db.execute(
                "SELECT MIN(next_try) FROM invite_pending WHERE state='retry'"
            ).fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def status(self) -> dict[str, MentorOutbox]:
        """Per mentor: sent, pending and failed counts and the last failure's answer."""
        found: dict[str, MentorOutbox] = {}
        with self.store.reading() as db:
            sent = db.execute(
                "SELECT mentor, COUNT(*), MAX(sent_at) FROM invite_sent GROUP BY mentor").fetchall()
            pending = db.execute(
                "SELECT mentor, session, state, answer, since FROM invite_pending "
                "ORDER BY mentor, session").fetchall()
        for mentor, count, last in sent:
            line = found.setdefault(mentor, MentorOutbox(mentor))
            line.sent = count
            line.last_sent = datetime.fromisoformat(last) if last else None
        for mentor, session, state, answer, since in pending:
            line = found.setdefault(mentor, MentorOutbox(mentor))
            line.sessions.append(session)
            if state == "failed":
                line.failed += 1
            else:
                line.pending += 1
            if answer:
                line.answer = answer
                moment = datetime.fromisoformat(since)
                if line.failing_since is None or moment < line.failing_since:
                    line.failing_since = moment
        return found

    # --------------------------------------------------------------- writes

    def record_pending(self, inv: Invitation, now: datetime) -> None:
        """Before the message goes to the SMTP server: what is about to be sent."""
        with self.store.transaction() as db:
            row = db.execute("SELECT hash, attempts, since FROM invite_pending WHERE address=? AND "
                             "session=?", inv.key).fetchone()
            attempts = row[1] if row and row[0] == inv.hash else 0
            since = row[2] if row and row[0] == inv.hash else _iso(now)
            db.execute(
                "INSERT OR REPLACE INTO invite_pending (mentor, session, sequence, hash, method, "
                "state, address, event, ends, attempts, next_try, answer, since) "
                "VALUES (?,?,?,?,?,'sending',?,?,?,?,NULL,"
                "(SELECT answer FROM invite_pending WHERE address=? AND session=? AND hash=?),?)",
                (inv.mentor, inv.session, inv.sequence, inv.hash, inv.method, inv.key[0],
                 inv.event, _iso(inv.ends), attempts, *inv.key, inv.hash, since),
            )

    def record_sent(self, inv: Invitation, now: datetime) -> None:
        """After the SMTP server's 250: the new last-sent version, nothing pending."""
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO invite_sent VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (inv.mentor, inv.session, inv.key[0], inv.sequence, inv.hash, inv.method,
                 inv.event, _iso(inv.ends), _iso(now),
                 " ".join(sorted(a.lower() for _, a in inv.attendees)), inv.organiser),
            )
            db.execute("DELETE FROM invite_pending WHERE address=? AND session=?", inv.key)
            if inv.name:  # whom the address belongs to, to name them once they have left
                db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (NAME_KEY + inv.key[0], inv.name))

    def names(self) -> dict[str, str]:
        """Per address (lower case), the name its last message was addressed to: a mentor
        removed from the programme is still named in the CANCELs of their copies."""
        with self.store.reading() as db:
            rows = db.execute("SELECT key, value FROM kv WHERE key >= ? AND key < ?",
                              (NAME_KEY, NAME_KEY[:-1] + chr(ord(NAME_KEY[-1]) + 1))).fetchall()
        return {key[len(NAME_KEY):]: value for key, value in rows}

    def record_failure(self, inv: Invitation, answer: str, *, temporary: bool, now: datetime,
                       retry_max: float) -> datetime | None:
        """A refusal: retry later with backoff (4xx, no server) or mark failed (5xx)."""
        with self.store.transaction() as db:
            row = db.execute("SELECT attempts FROM invite_pending WHERE address=? AND session=?",
                             inv.key).fetchone()
            attempts = (row[0] if row else 0) + 1
            next_try = None
            if temporary:
                pause = delay(attempts, base=RETRY_BASE, cap=retry_max)  # the one formula
                next_try = datetime.fromtimestamp(now.timestamp() + pause, UTC)
            db.execute(
                "UPDATE invite_pending SET state=?, attempts=?, next_try=?, answer=? "
                "WHERE address=? AND session=?",
                ("retry" if temporary else "failed", attempts,
                 _iso(next_try) if next_try else None, answer, *inv.key),
            )
        return next_try

    def drop_pending_except(self, keep: set[tuple[str, str]], *, mentor: str | None = None) -> None:
        """Forget pending entries the programme no longer wants (of ``mentor`` alone, when
        given): the planner has already turned any that may have reached a calendar into a
        CANCEL (which is kept)."""
        with self.store.transaction() as db:
            rows = (db.execute("SELECT address, session FROM invite_pending") if mentor is None else
                    db.execute("SELECT address, session FROM invite_pending WHERE mentor=?", (mentor,)))
            for address, session in rows.fetchall():
                if (address, session) not in keep:
                    db.execute("DELETE FROM invite_pending WHERE address=? AND session=?",
                               (address, session))

    def due_retries(self, now: datetime) -> set[str]:
        """The mentors with a message waiting out a 4xx answer whose time has come."""
        with self.store.reading() as db:
            rows = db.execute("SELECT DISTINCT mentor, next_try FROM invite_pending WHERE state='retry'")
            return {m for m, at in rows.fetchall() if at and datetime.fromisoformat(at) <= now}

    def mentors(self) -> set[str]:
        """Every mentor the outbox holds anything for (a departed one may still need a CANCEL)."""
        with self.store.reading() as db:
            rows = db.execute("SELECT mentor FROM invite_sent UNION SELECT mentor FROM invite_pending")
            return {r[0] for r in rows.fetchall()}
