"""Revisions and stamps: SEQUENCE and times that never go backwards, even when this store is lost.

* Time: every stamp the store hands out (an event's CREATED/LAST-MODIFIED/DTSTAMP,
  a feed's Last-Modified) is at least the highest one it handed out before (a
  high-water mark in ``kv``), and a feed whose bytes changed gets a Last-Modified
  strictly above its previous one, so a clock that steps back can neither make a
  client's If-Modified-Since hide a change nor put LAST-MODIFIED before CREATED.
* SEQUENCE: a session this store has never seen does not start at 0 but at
  ``sequence_floor(now)``, the number of seconds since 2020-01-01. Each later change
  adds exactly 1 (iTIP clients expect updates one higher). A SEQUENCE handed out
  before is therefore at most "the floor when the session was first seen + the
  number of changes since", which stays below the floor at any later moment unless
  a session changed more than once per second on average over its whole life. So a
  store that is deleted and rebuilt, with or without a programme change, renders
  every UID with a higher SEQUENCE than any copy of it a client holds, without
  having to ask anyone. Where our events sit on CalDAV servers, the sync also reads
  their SEQUENCE and raises ours above it before it writes (``raise_sequence``):
  that covers a store restored from an old backup, whose numbers are real but
  stale. The cost of this design is one rewrite of each pushed event after a lost
  store (its SEQUENCE rises), and large numbers in SEQUENCE, which RFC 5545 allows
  (it is a 32-bit integer; this floor reaches 2^31 in 2088).

Also here: when each feed's bytes last changed (``feeds_changed``), held to the same
high-water mark.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from klash_sync.state.changelog import Entry, insert_changes
from klash_sync.state.db import Database, iso, parse_time
from klash_sync.state.records import Revised, Revision

log = logging.getLogger(__name__)

_FLOOR_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_CLOCK_KEY = "clock.high-water"


def sequence_floor(moment: datetime) -> int:
    """The lowest SEQUENCE a session first seen at ``moment`` may get (see the module doc)."""
    return max(0, int((moment - _FLOOR_EPOCH).total_seconds()))


class Revisions(Database):
    """The store's sessions and feeds: what changed, its SEQUENCE, and when."""

    @staticmethod
    def _stamp(db: sqlite3.Connection, now: datetime) -> datetime:
        """``now``, but never below a stamp handed out before; records the high-water mark."""
        row = db.execute("SELECT value FROM kv WHERE key=?", (_CLOCK_KEY,)).fetchone()
        moment = parse_time(iso(now))
        if row is not None:
            moment = max(moment, parse_time(row[0]))
        db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (_CLOCK_KEY, iso(moment)))
        return moment

    # ------------------------------------------------------------ sessions

    def revise(
        self, fingerprints: Mapping[str, str], now: datetime,
        summaries: Mapping[str, dict[str, Any]] | None = None,
        changes: Callable[[Revised], Iterable[Entry]] | None = None,
    ) -> Revised:
        """Record the programme's sessions; return each one's revision and what happened.

        A session whose fingerprint changed gets SEQUENCE + 1 and ``changed = now``; a
        new one starts at ``sequence_floor(now)`` (see the module doc for why not 0);
        one that disappeared is marked removed but remembered, so that if it comes back
        its SEQUENCE keeps rising (clients ignore lower ones). ``summaries`` (what people
        notice about each session) are kept so that the next version can be described
        in words against this one. ``changes`` words what happened for the change log, whose
        entries are written in the same transaction: a revision is never kept without them
        (a full disk between the two would otherwise lose the entry for good, since the
        retry finds nothing changed).
        """
        summaries = summaries or {}
        result = Revised({}, {}, {}, first=False)
        with self._tx() as db:
            moment = self._stamp(db, now)
            stamp = iso(moment)
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
                    floor = sequence_floor(moment)
                    db.execute(
                        "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, NULL, ?)",
                        (sid, digest, floor, stamp, stamp, text),
                    )
                    result.revisions[sid] = Revision(floor, moment, moment)
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
                result.revisions[sid] = Revision(seq, parse_time(changed), parse_time(created))
            for sid, row in rows.items():
                if sid not in fingerprints and row[5] is None:
                    db.execute("UPDATE sessions SET removed=? WHERE id=?", (stamp, sid))
                    result.happened[sid] = "removed"
                    result.previous[sid] = json.loads(row[6]) if row[6] else None
            if changes is not None and not result.first:
                insert_changes(db, changes(result))
        return result

    def removed_at(self) -> dict[str, datetime]:
        """When each session that left the programme was recorded as gone: the moment of
        its CANCEL (DTSTAMP), fixed once recorded, so a preview shows the bytes then sent."""
        with self.reading() as db:
            rows = db.execute("SELECT id, removed FROM sessions WHERE removed IS NOT NULL")
            return {sid: parse_time(at) for sid, at in rows.fetchall()}

    def raise_sequence(self, session_id: str, at_least: int, now: datetime) -> bool:
        """Lift a session's SEQUENCE to ``at_least`` (a server holds that or a higher one).

        Called by the sync when a server's copy of one of our events carries a SEQUENCE
        that our next write would not exceed (a store restored from an old backup, or an
        app that edited the event and raised it). The revision's time moves to now, so
        DTSTAMP and LAST-MODIFIED rise with it. Returns True if anything changed.
        """
        with self._tx() as db:
            row = db.execute("SELECT sequence FROM sessions WHERE id=?", (session_id,)).fetchone()
            if row is None or row[0] >= at_least:
                return False
            stamp = iso(self._stamp(db, now))
            db.execute("UPDATE sessions SET sequence=?, changed=? WHERE id=?",
                       (at_least, stamp, session_id))
        log.info("SEQUENCE of %s raised from %d to %d to stay above a server's copy",
                 session_id, row[0], at_least)
        return True

    # --------------------------------------------------------------- feeds

    def feeds_changed(self, etags: Mapping[str, str], now: datetime) -> dict[str, datetime]:
        """When each feed's bytes last changed: now where its ETag is new, else as stored.

        A changed feed's time is strictly above its previous one, whatever the clock
        says: clients revalidate with If-Modified-Since, and an equal or older
        Last-Modified would get them a 304 for a feed that changed.
        One transaction for all feeds: a programme has a feed per mentor.
        """
        result: dict[str, datetime] = {}
        with self._tx() as db:
            moment = self._stamp(db, now)
            known = {r[0]: (r[1], r[2]) for r in db.execute("SELECT name, etag, changed FROM feeds")}
            for name, etag in etags.items():
                old = known.get(name)
                if old is not None and old[0] == etag:
                    result[name] = parse_time(old[1])
                    continue
                at = moment
                if old is not None and at <= parse_time(old[1]):
                    at = parse_time(old[1]) + timedelta(seconds=1)
                db.execute("INSERT OR REPLACE INTO feeds VALUES (?, ?, ?)", (name, etag, iso(at)))
                result[name] = at
            if result:
                latest = max(result.values())
                if latest > moment:
                    db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (_CLOCK_KEY, iso(latest)))
        return result
