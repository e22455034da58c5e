"""Mentors' answers on their calendar copies: read back on the next pass, kept in the store.

A mentor who presses Accept or Decline on our event changes the PARTSTAT of their
ATTENDEE on the copy (a client does GET, change, PUT with If-Match). The copy's ETag
then differs from the one we wrote, so ``remote.observe`` reads it; what it says is
recorded here as an ``Answer`` via ``caldav``, keyed by calendar, href and ETag, so
reading the same copy again records nothing. Only the calendar's own mentor counts
(their address as the ATTENDEE we wrote), only on our events of sessions the calendar
should hold, and never from a copy at our own last write's ETag: what it says is what
we carried over, and its time stamps are ours.

A copy that changes again without a new answer (the mentor edits the title of an event
they declined) is not a new answer: of the same answer to the same SEQUENCE from the
same calendar, the first is kept, so a later e-mail or web answer is not undone by it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

from klash_sync.deliver.caldav.jobs import Job, session_of
from klash_sync.deliver.caldav.plan import Remote
from klash_sync.render.participation import ANSWERED, address
from klash_sync.state.records import Answer
from klash_sync.state.store import Store

log = logging.getLogger(__name__)


def answer_of(job: Job, copy: Remote, now: datetime) -> Answer | None:
    """The calendar's mentor's answer on one copy read in this pass, if it holds one."""
    want = job.desired.get(copy.uid or "")
    if not copy.ours or copy.mine or want is None or want.invitee is None:
        return None
    partstat = dict(copy.partstats).get(address(want.invitee.email))
    if partstat not in ANSWERED:
        return None
    return Answer(job.mentor, session_of(want.uid), partstat.lower(), "caldav", copy.at or now,
                  copy.sequence or 0, f"caldav:{job.key}:{copy.href}:{copy.etag}")


def read_back(store: Store, job: Job, copies: Iterable[Remote], now: datetime) -> list[Answer]:
    """Record the new answers on ``copies``; return them."""
    found = [a for c in copies if (a := answer_of(job, c, now)) is not None]
    if not found:
        return []
    prefix = f"caldav:{job.key}:"
    given: Mapping[str, Answer] = {a.session: a for a in store.all_answers()
                                   if a.source.startswith(prefix) and a.mentor == job.mentor}
    fresh = [a for a in found if (before := given.get(a.session)) is None
             or (before.answer, before.for_sequence) != (a.answer, a.for_sequence)]
    new = store.record_answers(fresh, now) if fresh else []
    for a in new:
        log.info("calendar of %s: %s %s (SEQUENCE %d) on their copy", job.mentor, a.answer,
                 a.session, a.for_sequence)
    return new
