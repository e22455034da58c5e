"""Routing: which channel reaches each mentor, decided once, from the programme alone.

A mentor with a ``[caldav]`` table gets a CalDAV push into their own calendar; one with
``invite = true`` and an address gets e-mail invitations (iMIP), and only those: a
push as well would show every event twice in one calendar. Anyone else gets a calendar
on the embedded CalDAV server when it is on (``embedded``), and otherwise the feeds
only (which every mentor has anyway). The channels ask ``route`` or ``channel_of``; the
loader reports with ``problems`` the combinations that cannot be routed.

The embedded server's switch is a setting: callers pass it in, so this module reads
nothing but the programme and stays below everything that knows the settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

from klash_sync.programme.model import Mentor, Programme

Route = Literal["caldav", "embedded", "invite", "feeds"]
CALDAV: Route = "caldav"
EMBEDDED: Route = "embedded"
INVITE: Route = "invite"
FEEDS: Route = "feeds"


def channel_of(mentor: Mentor, *, embedded: bool) -> Route:
    """The one channel that reaches ``mentor`` (``feeds``: none beyond the feeds)."""
    if mentor.caldav is not None:
        return CALDAV
    if mentor.invite:
        # Without an address nothing can be sent (the loader refuses such a programme);
        # never fall back to a push that the organiser did not ask for.
        return INVITE if mentor.email else FEEDS
    return EMBEDDED if embedded else FEEDS


def route(programme: Programme, *, embedded: bool) -> dict[str, Route]:
    """Every mentor's channel, by mentor id, in the programme's order."""
    return {m.id: channel_of(m, embedded=embedded) for m in programme.mentors}


def reached_by(programme: Programme, channel: Route, *, embedded: bool = False) -> list[Mentor]:
    """The mentors that ``channel`` reaches, in the programme's order."""
    return [m for m in programme.mentors if channel_of(m, embedded=embedded) == channel]


def invited(programme: Programme) -> list[Mentor]:
    """The mentors who get e-mail invitations (the switch for the embedded server is moot)."""
    return reached_by(programme, INVITE)


Problem = tuple[str, int | None, str, str, str]  # table, index, place, field, message


def problems(programme: Programme) -> Iterator[Problem]:
    """What keeps a mentor from being routed: invitations without an address, with a
    push as well, or without a sender; in the programme's order, as the loader lists them."""
    return mentor_problems(enumerate(programme.mentors),
                           sender=programme.programme.organiser_email is not None)


def mentor_problems(mentors: Iterable[tuple[int, Mentor]], *, sender: bool) -> Iterator[Problem]:
    """``problems`` for the given mentors, each with its index in the file: the loader also
    asks it about the mentors that are valid in a file that is not, so that one mistake
    does not hide another. ``sender``: the programme names an ``organiser_email``.

    Two invited mentors at one address (a team mailbox) are refused: that mailbox's
    calendar holds one copy of each session, so taking one of them off a session would
    cancel it for the other as well."""
    addresses: dict[str, str] = {}
    for index, mentor in mentors:
        if not mentor.invite:
            continue
        place = f"mentor '{mentor.id}'"
        if mentor.email is not None:
            other = addresses.setdefault(mentor.email.lower(), mentor.id)
            if other != mentor.id:
                yield ("mentors", index, place, "email",
                       f"mentor '{other}' and mentor '{mentor.id}' both get invitations at "
                       f"{mentor.email}: one calendar cannot keep a session for one and cancel it "
                       "for the other; give each their own address")
        if mentor.email is None:
            yield ("mentors", index, place, "invite",
                   "invitations need the mentor's address: add email = \"…\"")
        if mentor.caldav is not None:
            yield ("mentors", index, place, "invite",
                   "choose invitations or a [caldav] push, not both: the same event would appear "
                   "twice in one calendar")
        if not sender:
            yield ("programme", None, "[programme]", "organiser_email",
                   f"mentor '{mentor.id}' gets invitations, which need a sender: add "
                   "organiser_email = \"…\" (replies go there)")
