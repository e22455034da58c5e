"""An invitation as an e-mail (iMIP, RFC 6047): pure, the moment of making passed in.

The shape is what Outlook/Exchange and Google Calendar send themselves::

    multipart/mixed
     ├── multipart/alternative
     │    ├── text/plain                          Finnish, with English (``body``)
     │    ├── text/html                           the same facts, escaped (``body``)
     │    └── text/calendar; method=REQUEST       the iTIP object (RFC 5546), base64
     └── application/ics; name=invite.ics        the same bytes, for clients that
                                                  only look at attachments

Sources: Exchange and Outlook put text/plain, text/html and text/calendar;
method=REQUEST (base64) side by side in one multipart/alternative (samples quoted in
github.com/chatmail/core/issues/7237 and github.com/muquit/mailsend/issues/118, and
Alpine's github.com/realpine/alpine/issues/28); Google and Yahoo Calendar and Lightning
add the calendar once more as an attachment outside the alternative, because some
clients look only at attachments (the structure described in the Stack Overflow answer
"Multipart email with text and calendar: Outlook doesn't recognize ics", question
19535685). The HTML goes before the calendar: clients show the last alternative they
can display, and the calendar part is for the calendar, not for reading.

METHOD in the Content-Type and in the body are the same, as RFC 6047 requires. The
VEVENT is the feed's, with SEQUENCE, DTSTAMP, ORGANIZER and ATTENDEEs added here only:
stored and feed events carry no ORGANIZER/ATTENDEE (see ``ical``), because a CalDAV
server would then send invitations of its own. Header values are folded by ``headers``
(RFC 2047 encoded words that every decoder reads back exactly); the body parts are 8bit
where the text needs it, and ``seven_bit`` makes the copy a server without 8BITMIME gets.
"""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import cast
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

from klash_sync.deliver.invite.body import facts, html_text, plain_text
from klash_sync.deliver.invite.headers import mailbox, unstructured
from klash_sync.deliver.invite.items import CANCEL, Invitation
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
        if name:  # a mentor removed from the programme: their name is no longer known
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


def _mentor_feed(page: str, mentor: str) -> str:
    return f"{page.rstrip('/')}/feeds/mentors/{mentor}.ics" if page else ""


def build_message(inv: Invitation, *, programme_name: str, organiser: str, organiser_email: str,
                  timezone: str, uid_domain: str, now: datetime, page: str = "",
                  public_feeds: bool = True, language: str | None = None, answer: str = "") -> EmailMessage:
    """The whole e-mail, ready for ``smtp.Transport``; the same inputs give the same message.

    ``page`` is the public address of the programme's page (``KLASH_PUBLIC_URL``), if known;
    the mentor's feed is linked only when feeds are public (a private feed's address is a
    secret the web layer makes, and a mail is no place for it). ``answer``: the mentor's
    answer page for this session (its token is theirs alone, made by the web layer).
    """
    body = calendar_body(inv, timezone=timezone, organiser=organiser,
                         organiser_email=organiser_email, now=now)
    event = cast(Event, Calendar.from_ical(body).walk("VEVENT")[0])
    said = facts(inv, event, ZoneInfo(timezone), programme_name=programme_name, page=page,
                 feed=_mentor_feed(page, inv.mentor) if public_feeds else "", language=language,
                 answer=answer)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = mailbox("From", organiser, organiser_email)
    msg["To"] = mailbox("To", inv.name, inv.address)
    msg["Subject"] = unstructured("Subject", said.subject)
    msg["Date"] = format_datetime(now.astimezone(UTC))
    msg["Message-ID"] = message_id(inv, uid_domain)
    msg["Auto-Submitted"] = "auto-generated"  # no out-of-office replies to a machine
    msg.set_content(plain_text(said), subtype="plain", charset="utf-8")
    msg.make_alternative()
    msg.add_alternative(html_text(said), subtype="html", charset="utf-8")
    msg.add_alternative(body, maintype="text", subtype="calendar",
                        params={"method": inv.method, "charset": "UTF-8"}, cte="base64")
    msg.make_mixed()
    msg.add_attachment(body, maintype="application", subtype="ics", filename="invite.ics",
                       cte="base64", params={"name": "invite.ics"})
    for part in msg.iter_parts():
        _strip_mime_version(cast(EmailMessage, part))
    return msg


def seven_bit(msg: EmailMessage) -> EmailMessage:
    """A copy with every 8bit part quoted-printable: for a server without 8BITMIME (RFC 6152
    lets a client send 8-bit data only to a server that announced it)."""
    copy = deepcopy(msg)
    for part in copy.walk():
        if part.is_multipart() or part.get("Content-Transfer-Encoding", "").lower() != "8bit":
            continue
        part.set_content(part.get_content(), subtype=part.get_content_subtype(),
                         charset="utf-8", cte="quoted-printable")
    for sub in copy.iter_parts():
        _strip_mime_version(cast(EmailMessage, sub))
    return copy


def _strip_mime_version(part: EmailMessage) -> None:
    """The email package repeats MIME-Version in every part; it belongs to the top only."""
    del part["MIME-Version"]
    if part.is_multipart():
        for sub in part.iter_parts():
            _strip_mime_version(sub)  # type: ignore[arg-type]
