"""What invitations should go out now: a pure function of the programme and the outbox.

A calendar is an address's, so everything here is per (address, session). For every
mentor with ``invite = true`` and every session of theirs, the planner compares what
their address should hold (a REQUEST, or a CANCEL for a cancelled session it was sent)
with what it was last sent (``Sent``) and what is on its way (``Pending``); every copy
an address still holds as upcoming but should not (a session removed, a mentor taken
off or gone, a mentor's old address) gets a CANCEL. One ``Invitation`` per difference.
The past is left alone: no first invitation to a session that has ended, but a copy
that is upcoming in a calendar follows its session, also into the past.

SEQUENCE is the store's revision of the session, but never lower than one above what
this address was last sent or was about to be sent: the store's number does not move
when an address changes or a session is removed, and a calendar ignores a message whose
SEQUENCE is not higher than the one it filed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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
    ends: datetime  # when the session ends, as sent
    attendees: tuple[str, ...] = ()  # the ATTENDEE addresses it named
    organiser: str = ""  # the ORGANIZER address it came from
    sent_at: datetime | None = None


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
    reason: str  # new | changed | cancelled | removed | taken off | address changed
    organiser: str = ""  # the ORGANIZER address it is sent from
    stamp: datetime | None = None  # DTSTAMP: fixed per session (SEQUENCE orders; None: now)

    @property
    def key(self) -> tuple[str, str]:  # the outbox's: one calendar (address), one session
        return (self.address.lower(), self.session)

    @property
    def partial(self) -> bool:
        """A CANCEL that uninvites this attendee from a session that goes on (RFC 5546
        section 3.2.5): it must not carry STATUS:CANCELLED."""
        return self.method == CANCEL and self.reason in ("taken off", "address changed")


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
    of this, the recipient's and the organiser's address) is kept per (address, session)
    in ``invite_sent``: a new formula would mail every invited mentor again."""
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
    """The invitations that make every address's calendar match the programme.

    ``sent`` and ``pending`` are keyed by (address in lower case, session): a calendar
    is an address's. ``pending`` entries that failed for good (5xx) are not retried with
    the same content; those waiting out a 4xx answer are counted in ``waiting`` until
    their time comes. With ``retry_waiting`` (``invites --send``) both are tried again now.

    ``only`` keeps one mentor's mailbox of the whole plan: the messages to the addresses
    that are theirs now, or were theirs and belong to nobody else now.
    """
    programme = snapshot.programme
    tz = ZoneInfo(programme.programme.timezone)
    sessions = {s.id: s for s in programme.sessions}
    result = InvitePlan()
    wanted: dict[tuple[str, str], Invitation] = {}
    waiting: dict[str, int] = {}
    mentors = {m.id: m for m in invited(programme)}
    owner = {(m.email or "").lower(): m.id for m in mentors.values()}  # one each: validate

    # What each address may hold: every REQUEST accepted, and every REQUEST that was being
    # handed over when we stopped (the server may have taken it).
    held_now: dict[tuple[str, str], Sent] = {
        k: Sent(p.mentor, p.session, p.address, p.sequence, p.hash, p.method, p.event, p.ends)
        for k, p in pending.items() if p.state == "sending" and p.method == REQUEST
    }
    held_now.update({k: v for k, v in sent.items() if v.method == REQUEST or k not in held_now})

    def upcoming_copy(key: tuple[str, str]) -> bool:
        """The address holds this session as still to come (as it was last sent)."""
        last = held_now.get(key)
        return last is not None and last.method == REQUEST and last.ends > now

    def sequence_for(key: tuple[str, str], base: int) -> int:
        above = [r.sequence + 1 for r in (sent.get(key), pending.get(key)) if r is not None]
        return max([base, *above])

    def consider(inv: Invitation, base: int) -> None:
        key = inv.key
        last = sent.get(key)
        if last is not None and last.hash == inv.hash:
            return  # the calendar has exactly this
        result.keep.add(key)
        was = pending.get(key)
        if was is not None and was.hash == inv.hash:
            if was.state == "failed" and not retry_waiting:
                return  # refused for good; shown until the content or the address changes
            if (was.state == "retry" and not retry_waiting and was.next_try is not None
                    and was.next_try > now):
                waiting[inv.mentor] = waiting.get(inv.mentor, 0) + 1
                return
            # the same message again: same SEQUENCE, same Message-ID (a crash may have sent it)
            wanted[key] = replace(inv, sequence=was.sequence)
            return
        wanted[key] = replace(inv, sequence=sequence_for(key, base))

    handled: set[tuple[str, str]] = set()
    for mentor in mentors.values():
        assert mentor.email is not None
        for session in programme.sessions_of(mentor.id):
            ends = ends_at(session, tz)
            key = (mentor.email.lower(), session.id)
            handled.add(key)
            if ends <= now and not upcoming_copy(key):
                continue  # never a first invitation to the past, nor news of a past copy
            revision = snapshot.revisions[session.id]
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
                                reason, organiser_email, revision.created), revision.sequence)

    # Every upcoming copy at an address that should no longer hold it: the session is gone
    # (a CANCEL of the whole), or this address is off it (a mentor taken off, removed, or at
    # a new address: a CANCEL that uninvites this attendee only, RFC 5546 section 3.2.5).
    for key, last in sorted(held_now.items()):
        if key in handled or key in wanted or key in result.keep or not upcoming_copy(key):
            continue
        address, session_id = key
        still = sessions.get(session_id)
        mentor_id = owner.get(address, last.mentor)
        known = programme.mentor(last.mentor)
        name = known.name if known is not None else ""  # never the id (the outbox keeps no names)
        moved = still is not None and last.mentor in mentors and last.mentor in still.mentors
        reason = "removed" if still is None else "address changed" if moved else "taken off"
        now_rev = snapshot.revisions.get(session_id) if still is not None else None
        consider(Invitation(mentor_id, name, last.address, session_id, CANCEL, 0,
                            _digest(CANCEL, session_id, last.address), last.event,
                            ((name, last.address),), last.ends, reason, organiser_email,
                            now_rev.created if now_rev else None), now_rev.sequence if now_rev else 0)

    _guard(result, wanted, sent, now)
    result.messages.sort(key=lambda m: (start_key(m, sessions, tz), m.session, m.mentor))
    result.waiting = sum(waiting.values())
    if only is not None:
        result.messages = [m for m in result.messages if m.mentor == only]
        result.held = {m: items for m, items in result.held.items() if m == only}
        result.waiting = waiting.get(only, 0)
    return result


def start_key(inv: Invitation, sessions: Mapping[str, Session], tz: ZoneInfo) -> datetime:
    session = sessions.get(inv.session)
    return start_instant(session, tz) if session is not None else inv.ends


def _guard(result: InvitePlan, wanted: dict[tuple[str, str], Invitation],
           sent: Mapping[tuple[str, str], Sent], now: datetime) -> None:
    """Hold a mentor's cancellations when they would empty most of their upcoming calendar
    (the shared ``MASS_CHANGE`` rule: more than three, and more than half of them)."""
    upcoming: dict[str, int] = {}
    for last in sent.values():  # keyed by address: count by the mentor each copy was sent to
        if last.method == REQUEST and last.ends > now:
            upcoming[last.mentor] = upcoming.get(last.mentor, 0) + 1
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
