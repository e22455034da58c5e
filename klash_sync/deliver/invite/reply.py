"""One e-mail read as an iMIP REPLY (RFC 6047), or the one-line reason it is not one.

Pure: bytes in, a ``Reply`` or ``NotAnswer`` out. Calendar clients send the same answer
in different shapes, and every shape is read the same way:

* Outlook / Exchange: ``multipart/alternative`` with a text body ("Accepted: title") and a
  ``text/calendar; method=REPLY`` part, base64; an empty ``COMMENT;LANGUAGE=…:\\n``;
* Google Calendar: ``text/calendar; method=REPLY`` inside ``multipart/alternative`` and the
  same calendar again as an ``application/ics`` attachment without a method; the mentor's
  note is the ATTENDEE's ``X-RESPONSE-COMMENT`` parameter, not a COMMENT;
* Apple (iCloud, Calendar Server): ``text/calendar; method=reply`` (lower case), inline,
  with a file name;
* Thunderbird: ``multipart/mixed`` with the ``text/calendar`` part 8-bit (or quoted-printable
  after a relay without 8BITMIME) and an ``application/ics`` ``invite.ics`` attachment.

What is taken: the first calendar part (text/calendar or application/ics, any transfer
encoding) that parses as iCalendar with ``METHOD:REPLY``; in it exactly one VEVENT UID and
exactly one ATTENDEE with a PARTSTAT of ACCEPTED, TENTATIVE or DECLINED; its SEQUENCE
(None when absent), DTSTAMP and COMMENT. From the message: the one ``From`` address and
the topmost ``Authentication-Results`` header. Whether it counts (whose answer to which
session) is decided elsewhere (``replies.judge``), against the programme and the outbox.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import Message

from icalendar import Calendar

PARTSTATS = {"ACCEPTED": "accepted", "TENTATIVE": "tentative", "DECLINED": "declined"}
_CALENDAR_TYPES = ("text/calendar", "application/ics")


class NotAnswer(Exception):
    """Why a message is not read as an answer (one line, no addresses)."""


@dataclass(frozen=True)
class Reply:
    sender: str  # the From address, lower case
    attendee: str  # the ATTENDEE's address, lower case
    uid: str
    answer: str  # accepted | tentative | declined
    sequence: int | None  # None: the REPLY names no SEQUENCE
    stamp: datetime | None  # DTSTAMP, in UTC
    comment: str
    authentication: str | None  # the topmost Authentication-Results header


def _address(value: object) -> str:
    text = str(value)
    return text[7:].strip().lower() if text.lower().startswith("mailto:") else text.strip().lower()


def _calendars(msg: Message) -> list[Calendar]:
    """Every calendar part that parses, the ones announcing method=REPLY first."""
    found: list[tuple[bool, Calendar]] = []
    for part in msg.walk():
        if part.get_content_type() not in _CALENDAR_TYPES:
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload.strip():
            continue
        try:
            calendar = Calendar.from_ical(payload.decode(part.get_content_charset() or "utf-8",
                                                         "replace"))
        except Exception:  # noqa: S112 - a part that does not parse is no reply, whatever it raises
            continue
        announced = str(part.get_param("method") or "").upper() == "REPLY"
        found.append((not announced, calendar))
    return [c for _, c in sorted(found, key=lambda pair: pair[0])]


def _stamp(event: object) -> datetime | None:
    value = getattr(event, "decoded", None)
    try:
        stamp = value("DTSTAMP") if value is not None else None
    except (KeyError, ValueError):
        return None
    if isinstance(stamp, datetime):
        return stamp.astimezone(UTC) if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    if isinstance(stamp, date):
        return datetime(stamp.year, stamp.month, stamp.day, tzinfo=UTC)
    return None


def read_reply(raw: bytes) -> Reply:
    """The REPLY in ``raw``; ``NotAnswer`` with the reason when there is none."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        senders = email.utils.getaddresses([str(v) for v in msg.get_all("From", [])])
        calendars = _calendars(msg)
        authentication = msg.get("Authentication-Results")
    except Exception as e:
        raise NotAnswer(f"unreadable message ({type(e).__name__})") from None
    addresses = [a.strip().lower() for _, a in senders if a.strip()]
    if len(addresses) != 1:
        raise NotAnswer("no single From address")
    replies = [c for c in calendars if str(c.get("METHOD", "")).upper() == "REPLY"]
    if not replies:
        raise NotAnswer("no iCalendar REPLY in it" if not calendars else "its calendar is not a REPLY")
    events = replies[0].walk("VEVENT")
    uids = {str(e.get("UID", "")) for e in events}
    if len(uids) != 1 or "" in uids:
        raise NotAnswer("the REPLY has not exactly one event UID")
    event = events[0]
    attendees = event.get("ATTENDEE")
    attendees = attendees if isinstance(attendees, list) else [attendees] if attendees else []
    if len(attendees) != 1:
        raise NotAnswer("the REPLY has not exactly one ATTENDEE")
    partstat = str(attendees[0].params.get("PARTSTAT", "")).upper()
    if partstat not in PARTSTATS:
        raise NotAnswer(f"PARTSTAT {partstat or 'missing'} is not an answer")
    try:
        sequence = int(str(event["SEQUENCE"])) if "SEQUENCE" in event else None
    except ValueError:
        raise NotAnswer("SEQUENCE is not a number") from None
    comment = event.get("COMMENT", "")  # Google writes it as the ATTENDEE's X-RESPONSE-COMMENT
    comment = " ".join(str(c) for c in comment) if isinstance(comment, list) else str(comment)
    comment = comment.strip() or str(attendees[0].params.get("X-RESPONSE-COMMENT", ""))
    return Reply(addresses[0], _address(attendees[0]), uids.pop(), PARTSTATS[partstat],
                 sequence, _stamp(event), " ".join(comment.split())[:500],
                 str(authentication) if authentication is not None else None)


def authentication_passes(header: str, authserv_id: str) -> bool | None:
    """What the organiser's own mail system said of this message (RFC 8601): None when the
    header is not its (another authserv-id), else whether DMARC passed, or (with no DMARC
    result) DKIM or SPF."""
    head, _, rest = " ".join(header.split()).partition(";")
    if head.split(" ")[0].strip().lower() != authserv_id.strip().lower():
        return None
    results: dict[str, str] = {}
    for clause in rest.split(";"):
        words = clause.strip().split(" ")
        method, _, result = words[0].partition("=")
        if method and result:
            results.setdefault(method.lower(), result.lower())
    if "dmarc" in results:
        return results["dmarc"] == "pass"
    return results.get("dkim") == "pass" or results.get("spf") == "pass"
