"""An invitation as an e-mail (iMIP, RFC 6047): pure, the moment of making passed in.

The shape is the one Outlook, Google Calendar, Apple Calendar and Thunderbird all
treat as an invitation (it is what Google Calendar itself sends)::

    multipart/mixed
     ├── multipart/alternative
     │    ├── text/plain                          Finnish, with an English line
     │    └── text/calendar; method=REQUEST       the iTIP object (RFC 5546)
     └── application/ics; name=invite.ics        the same bytes, for clients that
                                                  only look at attachments

METHOD in the Content-Type and in the body are the same, as RFC 6047 requires. The
VEVENT is the feed's, with SEQUENCE, DTSTAMP, ORGANIZER and ATTENDEEs added here only:
stored and feed events carry no ORGANIZER/ATTENDEE (see ``ical``), because a CalDAV
server would then send invitations of its own.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import cast
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

from klash_sync.deliver.invite.plan import CANCEL, Invitation
from klash_sync.render.ical import PRODID
from klash_sync.render.vtimezone import vtimezone_bytes


def message_id(inv: Invitation, uid_domain: str) -> str:
    """Stable per (session, mentor, sequence): a resend after a crash is the same message."""
    return f"<{inv.session}.{inv.mentor}.{inv.sequence}@{uid_domain}>"


def _address(email: str) -> vCalAddress:
    return vCalAddress(f"mailto:{email}")


def itip_event(inv: Invitation, *, organiser: str, organiser_email: str, now: datetime) -> Event:
    """The VEVENT of the message: the feed's event plus the scheduling properties."""
    event = cast(Event, Event.from_ical(inv.event))
    for name in ("SEQUENCE", "DTSTAMP", "ORGANIZER", "ATTENDEE"):
        event.pop(name, None)
    event.add("DTSTAMP", (inv.stamp or now).astimezone(UTC))  # the version's own moment
    event.add("SEQUENCE", inv.sequence)
    org = _address(organiser_email)
    org.params["CN"] = vText(organiser)
    event.add("ORGANIZER", org)
    for name, email in inv.attendees:
        att = _address(email)
        att.params["CN"] = vText(name)
        att.params["ROLE"] = vText("REQ-PARTICIPANT")
        att.params["PARTSTAT"] = vText("NEEDS-ACTION")
        att.params["RSVP"] = vText("TRUE")
        event.add("ATTENDEE", att)
    if inv.method == CANCEL:
        event.pop("STATUS", None)
        if not inv.partial:  # RFC 5546 3.2.5: not when uninviting some attendees only
            event.add("STATUS", "CANCELLED")
        event.subcomponents = [c for c in event.subcomponents if c.name != "VALARM"]
    return event


def calendar_body(inv: Invitation, *, timezone: str, organiser: str, organiser_email: str,
                  now: datetime) -> bytes:
    """The VCALENDAR with METHOD, the VTIMEZONE its times need, and the one VEVENT."""
    event = itip_event(inv, organiser=organiser, organiser_email=organiser_email, now=now)
    cal = Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    cal.add("CALSCALE", "GREGORIAN")
    cal.add("METHOD", inv.method)
    head = cal.to_ical()
    footer = b"END:VCALENDAR\r\n"
    parts = [head[: -len(footer)]]
    start = event.decoded("DTSTART")
    if isinstance(start, datetime):
        # The zone over the event's own years only (as ical.year_span gives for one
        # session): all that this one event needs, which keeps the message small.
        year = start.year
        parts.append(vtimezone_bytes(timezone, date(year, 1, 1), date(year + 2, 1, 1)))
    parts.append(event.to_ical())
    parts.append(footer)
    return b"".join(parts)


_WEEKDAYS = ("ma", "ti", "ke", "to", "pe", "la", "su")


def _when_text(event: Event, tz: ZoneInfo) -> str:
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    if isinstance(start, datetime):
        s, e = start.astimezone(tz), end.astimezone(tz)
        day = f"{_WEEKDAYS[s.weekday()]} {s.day}.{s.month}.{s.year}"
        return f"{day} klo {s:%H.%M}–{e:%H.%M} (Helsingin aikaa / Helsinki time)"
    last = date.fromordinal(end.toordinal() - 1)
    text = f"{_WEEKDAYS[start.weekday()]} {start.day}.{start.month}.{start.year}"
    if last != start:
        text += f"–{last.day}.{last.month}.{last.year}"
    return text + " (koko päivä / all day)"


def plain_text(inv: Invitation, event: Event, tz: ZoneInfo) -> tuple[str, str]:
    """Subject and body: what, when in Helsinki time, where, who else mentors, the link."""
    title = str(event.get("SUMMARY", inv.session))
    when_text = _when_text(event, tz)
    if inv.method == CANCEL:
        subject = f"Peruttu / Cancelled: {title}"
        lead = ("Tämä tilaisuus on peruttu tai et ole enää sen mentori; se poistuu kalenteristasi.\n"
                "This session is cancelled or you no longer mentor it; it leaves your calendar.")
    elif inv.reason == "changed":
        subject = f"Päivitetty / Updated: {title}, {when_text.split(' (')[0]}"
        lead = ("Tilaisuuden tiedot ovat muuttuneet; kalenterisi päivittyy.\n"
                "The session has changed; your calendar is updated.")
    else:
        subject = f"Kutsu / Invitation: {title}, {when_text.split(' (')[0]}"
        lead = ("Sinut on kutsuttu mentoriksi Klash-tilaisuuteen.\n"
                "You are invited as a mentor to a Klash session.")
    lines = [lead, "", title, f"Aika / When: {when_text}"]
    if event.get("LOCATION"):
        lines.append(f"Paikka / Where: {event.get('LOCATION')}")
    others = [name for name, email in inv.attendees if email != inv.address]
    if others:
        lines.append(f"Muut mentorit / Other mentors: {', '.join(others)}")
    if event.get("URL"):
        lines.append(f"Lisätiedot / Details: {event.get('URL')}")
    return subject, "\n".join(lines) + "\n"


def build_message(inv: Invitation, *, programme_name: str, organiser: str, organiser_email: str,
                  timezone: str, uid_domain: str, now: datetime) -> EmailMessage:
    """The whole e-mail, ready for ``smtplib``; the same inputs give the same message."""
    body = calendar_body(inv, timezone=timezone, organiser=organiser,
                         organiser_email=organiser_email, now=now)
    event = cast(Event, Calendar.from_ical(body).walk("VEVENT")[0])
    subject, text = plain_text(inv, event, ZoneInfo(timezone))
    msg = EmailMessage(policy=SMTP)
    sender = Address(display_name=organiser, addr_spec=organiser_email)
    msg["From"] = sender
    msg["To"] = Address(display_name=inv.name, addr_spec=inv.address)
    msg["Subject"] = f"{subject} – {programme_name}"
    msg["Date"] = format_datetime(now.astimezone(UTC))
    msg["Message-ID"] = message_id(inv, uid_domain)
    msg["Auto-Submitted"] = "auto-generated"  # no out-of-office replies to a machine
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.make_alternative()
    msg.add_alternative(body, maintype="text", subtype="calendar",
                        params={"method": inv.method, "charset": "UTF-8"}, cte="base64")
    msg.make_mixed()
    msg.add_attachment(body, maintype="application", subtype="ics", filename="invite.ics",
                       cte="base64", params={"name": "invite.ics"})
    for part in msg.iter_parts():
        _strip_mime_version(cast(EmailMessage, part))
    return msg


def _strip_mime_version(part: EmailMessage) -> None:
    """The email package repeats MIME-Version in every part; it belongs to the top only."""
    del part["MIME-Version"]
    if part.is_multipart():
        for sub in part.iter_parts():
            _strip_mime_version(sub)  # type: ignore[arg-type]
