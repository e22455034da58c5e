"""What invitations should go out now: a pure function of the programme and the outbox.

For every mentor with ``invite = true`` and every session, the planner compares what
the mentor's calendar should hold (a REQUEST for each of their sessions, nothing, or
a CANCEL for one they had been sent and no longer have) with what was last sent
(``Sent``) and what is already on its way (``Pending``), and returns one
``Invitation`` per (mentor, session) that differs. It never plans anything for a
session that has ended: mailing people about the past only confuses their calendars.

SEQUENCE is the store's revision of the session, but never lower than one above
what this mentor was last sent or was about to be sent: the store's number does not
move when only an address changes or a session is removed, and a calendar ignores a
message whose SEQUENCE is not higher than the one it filed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from klash_sync.deliver.base import MASS_CHANGE
from klash_sync.programme.model import Programme, Session
from klash_sync.programme.routing import invited as invited  # re-exported: service/invites
from klash_sync.render.ical import RENDER_VERSION, start_instant, when
from klash_sync.render.snapshot import Snapshot

REQUEST, CANCEL = "REQUEST", "CANCEL"


@dataclass(frozen=True)
class Sent:
    """The last message a mentor's calendar accepted for one session (the outbox's record)."""

    mentor: str
    session: str
    address: str
    sequence: int
    hash: str
    method: str
    event: bytes  # the VEVENT as sent, so that a later CANCEL can name what it cancels
    ends: datetime


@dataclass(frozen=True)
class Pending:
    """A message recorded before it was handed to the SMTP server, and how that went."""

    mentor: str
    session: str
    sequence: int
    hash: str
    method: str
    state: str  # sending | retry | failed
    address: str
    event: bytes
    ends: datetime
    attempts: int = 0
    next_try: datetime | None = None
    answer: str | None = None


@dataclass(frozen=True)
class Invitation:
    """One message to one mentor about one session."""

    mentor: str
    name: str
    address: str
    session: str
    method: str
    sequence: int
    hash: str
    event: bytes  # the VEVENT of the feed (or, for a session that is gone, the one last sent)
    attendees: tuple[tuple[str, str], ...]  # (name, address) of the session's mentors
    ends: datetime
    reason: str  # new | changed | cancelled | removed | taken off

    @property
    def key(self) -> tuple[str, str]:
        return (self.mentor, self.session)


@dataclass
class InvitePlan:
    """Everything to send, and the cancellations the mass-cancel guard holds back."""

    messages: list[Invitation] = field(default_factory=list)
    held: dict[str, list[Invitation]] = field(default_factory=dict)  # mentor -> cancellations
    waiting: int = 0  # messages that are due later (a 4xx answer's backoff)
    keep: set[tuple[str, str]] = field(default_factory=set)  # pending entries still wanted


def ends_at(session: Session, tz: ZoneInfo) -> datetime:
    """When a session is over, as an aware UTC instant (all-day: midnight after its last day)."""
    _, end = when(session, tz)
    if isinstance(end, datetime):
        return end.astimezone(UTC)
    return datetime(end.year, end.month, end.day, tzinfo=tz).astimezone(UTC)


def attendees(session: Session, programme: Programme) -> tuple[tuple[str, str], ...]:
    found = []
    for mid in session.mentors:
        mentor = programme.mentor(mid)
        if mentor is not None and mentor.email:
            found.append((mentor.name, mentor.email))
    return tuple(found)


def content(session: Session, programme: Programme) -> dict[str, object]:
    """What a mentor's copy must follow: the session and the programme-wide settings that
    reach its event, but not who else mentors it. Like Outlook's default, taking a mentor
    off (or adding one) mails those mentors only; the others' copies get the new list with
    the next real change.

    Hence not ``render.ical.fingerprint``, which includes the mentors' names (so a change
    of the list raises SEQUENCE for the feeds and pushed calendars). The digest (``_digest``
    of this, the recipient's and the organiser's address) is kept per (mentor, session)
    in ``invite_sent``: a new formula would make every stored digest differ and mail
    every invited mentor again on the first run after an upgrade."""
    info = programme.programme
    return {
        "render": RENDER_VERSION,
        "session": session.model_dump(mode="json", exclude={"mentors"}),
        "programme": info.model_dump(mode="json", exclude={"name", "url"}),
    }


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def plan_invitations(
    snapshot: Snapshot,
    sent: Mapping[tuple[str, str], Sent],
    pending: Mapping[tuple[str, str], Pending],
    *,
    now: datetime,
    organiser_email: str,
    retry_waiting: bool = False,
    only: str | None = None,
) -> InvitePlan:
    """The invitations that make every invited mentor's calendar match the programme.

    ``pending`` entries that failed for good (5xx) are not retried with the same content;
    those waiting out a 4xx answer are counted in ``waiting`` until their time comes. With
    ``retry_waiting`` (a person ran ``invites --send``) both are tried again now.

    ``only`` plans for one mentor's mailbox: every decision here is per (mentor, session),
    the guard per mentor, so planning one mentor from their own records is the same as
    taking their part of the whole plan.
    """
    if only is not None:
        sent = {k: v for k, v in sent.items() if k[0] == only}
        pending = {k: v for k, v in pending.items() if k[0] == only}
    programme = snapshot.programme
    tz = ZoneInfo(programme.programme.timezone)
    sessions = {s.id: s for s in programme.sessions}
    result = InvitePlan()
    wanted: dict[tuple[str, str], Invitation] = {}
    mentors = {m.id: m for m in invited(programme) if only is None or m.id == only}

    def sequence_for(key: tuple[str, str], base: int) -> int:
        floor = base
        if key in sent:
            floor = max(floor, sent[key].sequence + 1)
        if key in pending:
            floor = max(floor, pending[key].sequence + 1)
        return floor

    def consider(inv: Invitation, base: int) -> None:
        key = inv.key
        last = sent.get(key)
        if last is not None and last.hash == inv.hash:
            return  # the calendar has exactly this
        result.keep.add(key)
        waiting = pending.get(key)
        if waiting is not None and waiting.hash == inv.hash:
            if waiting.state == "failed" and not retry_waiting:
                return  # refused for good; shown until the content or the address changes
            if (waiting.state == "retry" and not retry_waiting and waiting.next_try is not None
                    and waiting.next_try > now):
                result.waiting += 1
                return
            # the same message again: same SEQUENCE, same Message-ID (a crash may have sent it)
            wanted[key] = _with_sequence(inv, waiting.sequence)
            return
        wanted[key] = _with_sequence(inv, sequence_for(key, base))

    for mentor in mentors.values():
        assert mentor.email is not None
        for session in programme.sessions_of(mentor.id):
            ends = ends_at(session, tz)
            if ends <= now:
                continue
            revision = snapshot.revisions[session.id]
            key = (mentor.id, session.id)
            if session.status == "cancelled":
                if key not in sent or sent[key].method != REQUEST:
                    continue  # never told about it: nothing to take back
                method, reason = CANCEL, "cancelled"
                digest = _digest(CANCEL, session.id, mentor.email)
            else:
                method = REQUEST
                reason = "changed" if key in sent and sent[key].method == REQUEST else "new"
                digest = _digest(REQUEST, content(session, programme), mentor.email,
                                 organiser_email)
            consider(Invitation(mentor.id, mentor.name, mentor.email, session.id, method, 0, digest,
                                snapshot.events[session.id], attendees(session, programme), ends,
                                reason), revision.sequence)

    # What the mentor may hold: every REQUEST accepted, and every REQUEST that was being
    # handed over when we stopped (the server may have taken it).
    held_now: dict[tuple[str, str], Sent] = {
        k: Sent(p.mentor, p.session, p.address, p.sequence, p.hash, p.method, p.event, p.ends)
        for k, p in pending.items() if p.state == "sending" and p.method == REQUEST
    }
    held_now.update({k: v for k, v in sent.items() if v.method == REQUEST or k not in held_now})
    for key, last in sorted(held_now.items()):
        if key in wanted or key in result.keep or last.method != REQUEST or last.ends <= now:
            continue
        mentor_id, session_id = key
        gone_session = sessions.get(session_id)
        gone_mentor = mentors.get(mentor_id)
        if gone_session is not None and gone_mentor is not None and mentor_id in gone_session.mentors:
            continue  # still theirs (unchanged, waiting, or failed): handled above
        reason = "removed" if gone_session is None else "taken off"
        base = snapshot.revisions[session_id].sequence if gone_session is not None else 0
        name = gone_mentor.name if gone_mentor is not None else ""  # never the id
        inv = Invitation(mentor_id, name, last.address, session_id, CANCEL, 0,
                         _digest(CANCEL, session_id, last.address), last.event,
                         ((name, last.address),), last.ends, reason)
        consider(inv, base)

    _guard(result, wanted, sent, now)
    result.messages.sort(key=lambda m: (start_key(m, sessions, tz), m.session, m.mentor))
    return result


def start_key(inv: Invitation, sessions: Mapping[str, Session], tz: ZoneInfo) -> datetime:
    session = sessions.get(inv.session)
    return start_instant(session, tz) if session is not None else inv.ends


def _with_sequence(inv: Invitation, sequence: int) -> Invitation:
    from dataclasses import replace

    return replace(inv, sequence=sequence)


def _guard(result: InvitePlan, wanted: dict[tuple[str, str], Invitation],
           sent: Mapping[tuple[str, str], Sent], now: datetime) -> None:
    """Hold a mentor's cancellations when they would empty most of their upcoming calendar
    (the shared ``MASS_CHANGE`` rule: more than three, and more than half of them)."""
    upcoming: dict[str, int] = {}
    for (mentor, _), last in sent.items():
        if last.method == REQUEST and last.ends > now:
            upcoming[mentor] = upcoming.get(mentor, 0) + 1
    cancels: dict[str, list[Invitation]] = {}
    for inv in wanted.values():
        if inv.method == CANCEL:
            cancels.setdefault(inv.mentor, []).append(inv)
    for mentor, items in cancels.items():
        if MASS_CHANGE.refuses(len(items), upcoming.get(mentor, 0)):
            result.held[mentor] = sorted(items, key=lambda i: i.session)
    for inv in wanted.values():
        if inv.method == CANCEL and inv.mentor in result.held:
            continue
        result.messages.append(inv)


def release(plan: InvitePlan) -> InvitePlan:
    """The same plan with held cancellations let through (``--allow-mass-cancel``)."""
    messages = list(plan.messages)
    for items in plan.held.values():
        messages.extend(items)
    return InvitePlan(messages, {}, plan.waiting, plan.keep)
