"""The invitation channel's units: one per mentor's mailbox, and its status record.

What the scheduler compares to decide that a mailbox is due, and how a mentor's outbox
line is shown on the page, ``/healthz`` and ``/metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass

from klash_sync.deliver.invite.outbox import MentorOutbox, Outbox
from klash_sync.deliver.invite.plan import invited
from klash_sync.render.snapshot import Snapshot
from klash_sync.status import Record


@dataclass(frozen=True)
class Mailbox:
    """One unit of this channel: a mentor's mailbox, and what it should have been sent.

    ``signature`` is the address and, per session of theirs, its SEQUENCE and content:
    an edit marks due exactly the mentors it concerns. A mentor who left the programme
    but still holds invitations is a unit too, until their cancellations are out.
    """

    mentor: str
    signature: tuple[object, ...]


def mailboxes(snapshot: Snapshot, outbox: Outbox) -> list[Mailbox]:
    programme = snapshot.programme
    email = programme.programme.organiser_email
    found = {}
    for mentor in invited(programme):
        sessions = tuple((s.id, snapshot.revisions[s.id].sequence, snapshot.hashes.get(s.id, ""))
                         for s in programme.sessions_of(mentor.id))
        found[mentor.id] = Mailbox(mentor.id, (mentor.email, mentor.name, email, sessions))
    for mentor_id in outbox.mentors() - set(found):
        found[mentor_id] = Mailbox(mentor_id, ("gone",))
    return [found[m] for m in sorted(found)]


def record(line: MentorOutbox) -> Record:
    """One mentor's outbox line as a status record."""
    return Record("invite", line.mentor, line.mentor, ok=not line.failed and line.answer is None,
                  last_success=line.last_sent, failing_since=line.failing_since, error=line.answer,
                  counts={"sent": line.sent, "pending": line.pending, "failed": line.failed},
                  sessions=tuple(line.sessions))
