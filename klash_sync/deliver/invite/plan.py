"""What invitations should go out now: a pure function of the programme and the outbox.

A calendar is an address's, so everything here is per (address, session). For every
mentor with ``invite = true`` and every session of theirs, the planner compares what
their address should hold (a REQUEST, or a CANCEL for a cancelled session it was sent)
with what it was last sent (``Sent``) and what is on its way (``Pending``); every copy
an address still holds as upcoming but should not (a session removed, a mentor taken
off or gone, a mentor's old address) gets a CANCEL; an address no invited mentor has
any more (a mentor's old address, a mentor who left) gets a CANCEL of every copy it
holds, past ones too. Every CANCEL comes from the organiser address its copy came from.
One ``Invitation`` per difference, but for a copy sent from an earlier
``organiser_email``: that calendar follows only its old organiser, so it gets a CANCEL
from that address and then a REQUEST from the new one (``handover``). Otherwise the past
is left alone: no first invitation to a session that has ended, but a copy that is
upcoming in a calendar follows its session, also into the past.

SEQUENCE is the store's revision of the session, but never lower than one above what
this address was last sent or was about to be sent: the store's number does not move
when an address changes or a session is removed, and a calendar ignores a message whose
SEQUENCE is not higher than the one it filed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from klash_sync.deliver.base import MASS_CHANGE
from klash_sync.deliver.invite.items import CANCEL, REQUEST, Invitation, InvitePlan, Pending, Sent
from klash_sync.programme.model import Programme, Session
from klash_sync.programme.routing import invited as invited  # re-exported: service/invites
from klash_sync.render.ical import RENDER_VERSION, start_instant, when
from klash_sync.render.snapshot import Snapshot


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
    names: Mapping[str, str] | None = None,
    removed: Mapping[str, datetime] | None = None,
) -> InvitePlan:
    """The invitations that make every address's calendar match the programme.

    ``sent`` and ``pending`` are keyed by (address in lower case, session): a calendar
    is an address's. ``pending`` entries that failed for good (5xx) are not retried with
    the same content; those waiting out a 4xx answer are counted in ``waiting`` until
    their time comes. With ``retry_waiting`` (``invites --send``) both are tried again now.

    ``only`` keeps one mentor's mailbox of the whole plan: the messages to the addresses
    that are theirs now, or were theirs and belong to nobody else now. ``names``: per
    address, the name it was last mailed under (for a mentor who has left); ``removed``: per
    session gone from the programme, when that was recorded (its CANCELs' DTSTAMP).
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
    after: dict[tuple[str, str], Invitation] = {}  # a REQUEST that follows its key's handover
    for mentor in mentors.values():
        assert mentor.email is not None
        for session in programme.sessions_of(mentor.id):
            ends = ends_at(session, tz)
            key = (mentor.email.lower(), session.id)
            handled.add(key)
            if ends <= now and not upcoming_copy(key):
                continue  # never a first invitation to the past, nor news of a past copy
            revision, last = snapshot.revisions[session.id], sent.get(key)
            held = last is not None and last.method == REQUEST
            if session.status == "cancelled":
                if last is None or not held:
                    continue  # never told about it: nothing to take back
                method, reason, org = CANCEL, "cancelled", last.organiser or organiser_email
                digest = _digest(CANCEL, session.id, mentor.email)
            else:
                method, reason, org = REQUEST, "changed" if held else "new", organiser_email
                digest = _digest(REQUEST, content(session, programme), mentor.email,
                                 organiser_email)
            inv = Invitation(mentor.id, mentor.name, mentor.email, session.id, method, 0, digest,
                             snapshot.events[session.id], attendees(session, programme), ends,
                             reason, org, revision.created)
            if (last is not None and held and method == REQUEST and last.organiser
                    and last.organiser.lower() != organiser_email.lower()):
                # sent from an earlier organiser address: the calendar follows only that one
                consider(replace(inv, method=CANCEL, reason="handover", organiser=last.organiser,
                                 hash=_digest(CANCEL, session.id, mentor.email, last.organiser),
                                 event=last.event, ends=last.ends), revision.sequence)
                if key in wanted:  # then the REQUEST from the new address, one higher
                    after[key] = replace(inv, reason="new", sequence=wanted[key].sequence + 1)
                continue
            consider(inv, revision.sequence)

    # Every upcoming copy at an address that should no longer hold it: the session is gone
    # (a CANCEL of the whole), or this address is off it (a mentor taken off, removed, or at
    # a new address: a CANCEL that uninvites this attendee only, RFC 5546 section 3.2.5).
    # An address that no invited mentor has any more loses its past copies too.
    for key, last in sorted(held_now.items()):
        if key in handled or key in wanted or key in result.keep or last.method != REQUEST:
            continue
        if not upcoming_copy(key) and key[0] in owner:
            continue
        address, session_id = key
        still = sessions.get(session_id)
        mentor_id = owner.get(address, last.mentor)
        known = programme.mentor(last.mentor)
        name = known.name if known is not None else (names or {}).get(address, "")  # never the id
        moved = still is not None and last.mentor in mentors and last.mentor in still.mentors
        reason = "removed" if still is None else "address changed" if moved else "taken off"
        now_rev = snapshot.revisions.get(session_id) if still is not None else None
        consider(Invitation(mentor_id, name, last.address, session_id, CANCEL, 0,
                            _digest(CANCEL, session_id, last.address), last.event,
                            ((name, last.address),), last.ends, reason,
                            last.organiser or organiser_email,
                            now_rev.created if now_rev else (removed or {}).get(session_id)),
                 now_rev.sequence if now_rev else 0)

    _guard(result, wanted, sent, now, after)
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
           sent: Mapping[tuple[str, str], Sent], now: datetime,
           after: Mapping[tuple[str, str], Invitation] | None = None) -> None:
    """Hold a mentor's cancellations when they would empty most of their upcoming calendar,
    or most of their past copies (the shared ``MASS_CHANGE`` rule: more than three, and more
    than half of them). A handover's CANCEL is no removal: its REQUEST follows at once."""
    holding: dict[tuple[str, bool], int] = {}
    for last in sent.values():  # keyed by address: count by the mentor each copy was sent to
        if last.method == REQUEST:
            side = (last.mentor, last.ends > now)
            holding[side] = holding.get(side, 0) + 1
    cancels: dict[tuple[str, bool], list[Invitation]] = {}
    for inv in wanted.values():
        if inv.method == CANCEL and inv.reason != "handover":
            cancels.setdefault((inv.mentor, inv.ends > now), []).append(inv)
    for side, items in cancels.items():
        if MASS_CHANGE.refuses(len(items), holding.get(side, 0)):
            mentor = side[0]
            result.held[mentor] = sorted(
                (i for (m, _), its in cancels.items() if m == mentor for i in its),
                key=lambda i: i.session)
    for inv in wanted.values():
        if inv.method == CANCEL and inv.reason != "handover" and inv.mentor in result.held:
            continue
        result.messages.append(inv)
        if after and inv.key in after:
            result.messages.append(after[inv.key])


def release(plan: InvitePlan) -> InvitePlan:
    """The same plan with held cancellations let through (``--allow-mass-cancel``)."""
    messages = list(plan.messages)
    for items in plan.held.values():
        messages.extend(items)
    return InvitePlan(messages, {}, plan.waiting, plan.keep)
