"""Who is asked on a stored copy: the organiser as ORGANIZER, the calendar's mentor as ATTENDEE.

Only the events we push into a mentor's CalDAV calendar carry them, so that calendar
apps show Accept/Decline on the mentor's copy and the participation status the mentor
sets can be read back (``deliver.caldav.answers``). Feeds do not (``render.ical``): a
subscribed feed is read-only, and RSVP buttons there would make the mentor's app mail
the organiser an answer nobody asked for through that channel.

Both carry ``SCHEDULE-AGENT=CLIENT`` (RFC 6638 §7.1): a server with scheduling (Cyrus,
Nextcloud/SabreDAV, Apple) then does no scheduling for the copy, so nothing we PUT makes
it send an invitation, a cancellation or a reply to anyone. The ATTENDEE is the
calendar's mentor only: the other mentors of the session are named in the description,
never as attendees whom a server or a client could mail.

Both need an address: the programme's ``organiser_email`` and the mentor's ``email``.
Without either, the copy is a plain event as before (no ORGANIZER, no ATTENDEE): a
meeting with an invented organiser would send a client's answer to nobody, or to a
stranger. The lines are rendered by icalendar, in a fixed order, so the same programme
gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from icalendar import Event, vCalAddress
from icalendar.prop import vText

from klash_sync.programme.model import Programme

ASKED = "NEEDS-ACTION"  # the PARTSTAT of a question not answered yet
ANSWERED = ("ACCEPTED", "TENTATIVE", "DECLINED")  # the PARTSTATs that are an answer
_HEAD = b"BEGIN:VEVENT\r\n"
_TAIL = b"END:VEVENT\r\n"


def address(value: object) -> str:
    """A calendar address as compared: without ``mailto:``, in lower case."""
    text = str(value).strip()
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:"):]
    return text.lower()


def _line(name: str, mail: str, params: dict[str, str]) -> bytes:
    prop = vCalAddress(f"mailto:{mail}")
    for key, value in params.items():
        prop.params[key] = vText(value) if key == "CN" else value
    event = Event()
    event.add(name, prop)
    raw: bytes = event.to_ical()
    return raw[len(_HEAD):-len(_TAIL)]


@dataclass(frozen=True)
class Invitee:
    """The organiser and one mentor, as a copy in that mentor's calendar names them."""

    organiser: str
    organiser_email: str
    name: str
    email: str

    @property
    def parties(self) -> str:
        """What the compared content holds of them (``normalise.parties``)."""
        return parties_text([address(self.organiser_email)], [address(self.email)])

    def organizer_line(self) -> bytes:
        return _line("ORGANIZER", self.organiser_email,
                     {"CN": self.organiser, "SCHEDULE-AGENT": "CLIENT"})

    def attendee_line(self, partstat: str = ASKED) -> bytes:
        return _line("ATTENDEE", self.email,
                     {"CN": self.name, "CUTYPE": "INDIVIDUAL", "PARTSTAT": partstat,
                      "ROLE": "REQ-PARTICIPANT", "RSVP": "TRUE", "SCHEDULE-AGENT": "CLIENT"})

    def insert(self, body: bytes) -> bytes:
        """``body`` (one stored VCALENDAR) with both lines, asking (PARTSTAT=NEEDS-ACTION).

        They go before the event's first alarm, or before its end: the VTIMEZONE that may
        come first has neither.
        """
        at = body.find(b"BEGIN:VALARM\r\n")
        if at < 0:
            at = body.find(_TAIL)
        assert at > 0, "a stored object holds one VEVENT"
        return body[:at] + self.organizer_line() + self.attendee_line() + body[at:]

    def answered(self, body: bytes, partstat: str | None) -> bytes:
        """``body`` (from ``insert``) with the mentor's answer instead of the question."""
        if partstat is None or partstat not in ANSWERED:
            return body
        return body.replace(self.attendee_line(), self.attendee_line(partstat), 1)


def parties_text(organisers: list[str], attendees: list[str]) -> str:
    """The organiser and attendee addresses in a fixed form; empty when there are none."""
    if not organisers and not attendees:
        return ""
    return "\n".join([f"ORGANIZER:{a}" for a in sorted(organisers)]
                     + [f"ATTENDEE:{a}" for a in sorted(attendees)])


def invitee(programme: Programme, mentor_id: str) -> Invitee | None:
    """Who a copy in ``mentor_id``'s calendar names, or None without both addresses."""
    info = programme.programme
    mentor = programme.mentor(mentor_id)
    if info.organiser_email is None or mentor is None or mentor.email is None:
        return None
    return Invitee(info.organiser, info.organiser_email, mentor.name, mentor.email)
