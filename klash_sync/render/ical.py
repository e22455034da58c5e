"""iCalendar rendering: a session becomes one VEVENT, a list of VEVENTs becomes a feed.

Everything here is pure and deterministic: the time stamps (DTSTAMP, LAST-MODIFIED,
CREATED) and SEQUENCE come from the ``Revision`` the caller passes in, never from
the clock, so an unchanged programme renders byte-identical feeds and ETags stay
valid across restarts. All escaping is the icalendar library's; values of ``X-``
properties are wrapped in ``vText`` because ``add("X-…", str)`` does not escape.

No ATTENDEE, ORGANIZER or METHOD goes into an event rendered here: feeds are read-only,
and scheduling servers refuse stored objects with a METHOD. Mentors' names go into the
description. The copies pushed into a mentor's CalDAV calendar add ORGANIZER and that
mentor as ATTENDEE, with SCHEDULE-AGENT=CLIENT (``participation``).

Feeds carry no METHOD either. ``METHOD:PUBLISH`` makes a feed an iTIP message
(RFC 5546), and iTIP's PUBLISH requires an ORGANIZER in every VEVENT: libical's
restriction check (Evolution, GNOME) rejected every feed for it. We choose no METHOD
over an ORGANIZER because an ORGANIZER needs a mailto: address we do not have, turns a
programme entry into a "meeting" in Outlook and Apple Calendar (with an organiser and
reply buttons mentors cannot use) and, since the same VEVENT bytes are stored on CalDAV
servers, invites scheduling processing there. Without METHOD a feed is a plain RFC 5545
calendar: subscriptions (Google "From URL", Apple and Outlook "subscribe") never used
METHOD, and a downloaded .ics opens as an import of events in Outlook, Google and Apple
Calendar, which is what a mentor wants. libical then checks the RFC 5545 property counts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Event
from icalendar.prop import vDuration, vText

from klash_sync.programme.model import Programme, Session
from klash_sync.render.vtimezone import vtimezone_bytes
from klash_sync.state.records import Revision

PRODID = "-//Kuntaliitto//klash-sync//FI"
MARKER = "X-KLASH-SYNC"
# How often subscribing clients should refetch a feed (RFC 7986 and the Apple/Google one).
REFRESH = timedelta(hours=1)


def uid(session_id: str, programme: Programme) -> str:
    """The event's identity: stable for as long as the session id and uid_domain are."""
    return f"{session_id}@{programme.programme.uid_domain}"


def session_url(session: Session, base_url: str | None) -> str | None:
    """The event's URL: the organiser's own link, else the session on the public page.

    The page link is given only when the service has a public address
    (``KLASH_PUBLIC_URL``): a link to the address it listens on (127.0.0.1:8080) is of
    no use on a mentor's phone. It is presentation, not content: it is left out of the
    fingerprint (so moving the service to another address or port raises no SEQUENCE
    and writes no change-log entry) and out of the compared content (so it rewrites
    no event on any server); events pick the new address up with their next change,
    feeds at once.
    """
    if session.url:
        return session.url
    return f"{base_url}/#{session.id}" if base_url else None


def when(session: Session, tz: ZoneInfo) -> tuple[date | datetime, date | datetime]:
    """DTSTART and DTEND: dates for all-day sessions (end exclusive), zoned datetimes otherwise.

    Times given with an offset keep their instant and are shown in the programme's zone,
    so that every event uses one TZID and one VTIMEZONE.
    """
    if session.date is not None:
        last = session.end_date or session.date
        return session.date, last + timedelta(days=1)
    assert session.start is not None and session.end is not None  # noqa: PT018 (model invariant)
    return _zoned(session.start, tz), _zoned(session.end, tz)


def _zoned(value: datetime, tz: ZoneInfo) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=tz)
    return value.astimezone(tz)


def start_instant(session: Session, tz: ZoneInfo) -> datetime:
    """When a session starts, as an aware datetime (all-day: local midnight); used for order."""
    start, _ = when(session, tz)
    if isinstance(start, datetime):
        return start
    return datetime(start.year, start.month, start.day, tzinfo=tz)


def description(session: Session, programme: Programme) -> str:
    names = [m.name for mid in session.mentors if (m := programme.mentor(mid)) is not None]
    parts = []
    if session.status == "cancelled":
        parts.append("PERUTTU – tämä tilaisuus on peruttu.")
    if session.description:
        parts.append(session.description)
    if names:
        label = "Mentori" if len(names) == 1 else "Mentorit"
        parts.append(f"{label}: {', '.join(names)}")
    parts.append(f"Järjestäjä: {programme.programme.organiser}")
    return "\n\n".join(parts)


def render_event(
    session: Session, programme: Programme, *, revision: Revision, base_url: str | None
) -> Event:
    """The VEVENT for one session. Same inputs, same bytes."""
    tz = ZoneInfo(programme.programme.timezone)
    start, end = when(session, tz)
    event = Event()
    event.add("UID", uid(session.id, programme))
    event.add("DTSTAMP", revision.changed)
    event.add("CREATED", revision.created)
    event.add("LAST-MODIFIED", revision.changed)
    event.add("SEQUENCE", revision.sequence)
    title = session.title if session.status != "cancelled" else f"PERUTTU: {session.title}"
    event.add("SUMMARY", title)
    event.add("DTSTART", start)
    event.add("DTEND", end)
    if session.location:
        event.add("LOCATION", session.location)
    event.add("DESCRIPTION", description(session, programme))
    event.add("STATUS", session.status.upper())
    link = session_url(session, base_url)
    if link:
        event.add("URL", link)
    categories = ["Klash"] + ([session.municipality] if session.municipality else [])
    event.add("CATEGORIES", categories)
    # A called-off session must not show the mentor as busy in apps that ignore STATUS.
    event.add("TRANSP", "TRANSPARENT" if session.status == "cancelled" else "OPAQUE")
    event.add("CLASS", "PUBLIC")
    event.add(MARKER, vText(session.id))
    if session.status != "cancelled":  # nobody wants a reminder of a called-off session
        reminders = session.reminders if session.reminders is not None else programme.programme.reminders
        for before in sorted(set(reminders), reverse=True):
            alarm = Alarm()
            alarm.add("ACTION", "DISPLAY")
            alarm.add("DESCRIPTION", title)
            alarm.add("TRIGGER", -before)
            event.add_component(alarm)
    return event


# Bump when a change to this module changes the bytes of events, so that every event
# gets a higher SEQUENCE and clients take the new rendering.
RENDER_VERSION = 3  # 3: cancelled sessions are TRANSPARENT


def fingerprint(session: Session, programme: Programme) -> str:
    """Hash of everything that reaches the event except its revision: 'did it change?'.

    Built from the inputs of ``render_event`` rather than from a rendering, which would
    cost a full icalendar serialisation per session and per load. How the service is
    reached (its port, its public address) is not part of a session: see ``session_url``.

    Not the invitation digest (``deliver.invite.plan.content``), on purpose: this one is
    per session and includes its mentors' names (every copy of the event shows them),
    and the store keeps it to decide SEQUENCE. The digest is per recipient, leaves the
    other mentors out and adds the addresses. Both values are stored (this one in the
    sessions table, the digest in ``invite_sent``): merging them would change every
    stored value, and the first run after an upgrade would raise every SEQUENCE and
    rewrite every event, or mail every invitation again.
    """
    info = programme.programme
    content = {
        "render": RENDER_VERSION,
        "session": session.model_dump(mode="json"),
        "mentors": [m.name for mid in session.mentors if (m := programme.mentor(mid)) is not None],
        "organiser": info.organiser,
        "timezone": info.timezone,
        "uid_domain": info.uid_domain,
        "reminders": [r.total_seconds() for r in info.reminders],
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def year_span(programme: Programme) -> tuple[date, date]:
    """The span a VTIMEZONE must cover: whole years around every session, derived from the
    programme alone so that the feed stays deterministic."""
    tz = ZoneInfo(programme.programme.timezone)
    years = [start_instant(s, tz).year for s in programme.sessions] or [2000]
    return date(min(years), 1, 1), date(max(years) + 2, 1, 1)


def vtimezone(programme: Programme) -> bytes:
    first, last = year_span(programme)
    return vtimezone_bytes(programme.programme.timezone, first, last)


def calendar_bytes(
    events: Iterable[bytes],
    *,
    programme: Programme,
    name: str,
    timed: bool,
    feed: bool = True,
    timezone: bytes | None = None,
) -> bytes:
    """A VCALENDAR around pre-rendered VEVENTs.

    The header is rendered by icalendar; the events and the VTIMEZONE, already
    serialised by icalendar, are spliced in before END:VCALENDAR, so that a feed of
    thousands of events does not re-serialise each one. Neither has a METHOD (see the
    module docstring); ``feed=False`` gives the object stored on a CalDAV server, without
    the feed headers.
    """
    cal = Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    cal.add("CALSCALE", "GREGORIAN")
    if feed:
        cal.add("NAME", name)
        cal.add("X-WR-CALNAME", vText(name))
        cal.add("X-WR-TIMEZONE", vText(programme.programme.timezone))
        cal.add("REFRESH-INTERVAL", REFRESH, parameters={"VALUE": "DURATION"})
        cal.add("X-PUBLISHED-TTL", vDuration(REFRESH))
    head = cal.to_ical()
    footer = b"END:VCALENDAR\r\n"
    assert head.endswith(footer)
    parts = [head[: -len(footer)]]
    if timed:
        parts.append(timezone if timezone is not None else vtimezone(programme))
    parts.extend(events)
    parts.append(footer)
    return b"".join(parts)
