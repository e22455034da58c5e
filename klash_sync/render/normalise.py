"""What an event on a server *means*, so that we compare content and not bytes.

Servers rewrite what they store: they re-fold lines, reorder properties, add their
own PRODID, rewrite time stamps, drop or rewrite VTIMEZONEs and alarms. Comparing
bytes would make us rewrite every event on every sync. So the content hash covers
only the properties we set and that carry meaning, each in canonical form.

Ignored, and why:

* DTSTAMP, LAST-MODIFIED, CREATED: servers (Nextcloud, iCloud) rewrite them; and
  they change only together with SEQUENCE, which is compared.
* PRODID, VERSION, CALSCALE and the VTIMEZONE: calendar-level; servers substitute
  their own. The instants are still compared, through DTSTART/DTEND with TZID.
* URL, when it is the page link we add: it follows the service's public address,
  not the session (see ``ical.session_url``); an organiser's own ``url`` is part of
  the session's fingerprint, so changing it raises SEQUENCE, which is compared.
* VALARM: iCloud and some clients drop or rewrite alarms of shared events; a
  mentor's own alarm choices on our event should not fight with ours.
* Any property we do not write (X-MOZ-*, X-APPLE-*, …): added by clients.
* Of ORGANIZER and ATTENDEE (``render.participation``), everything but the addresses:
  the PARTSTAT is the mentor's answer, to be read back and kept, never "put back";
  RSVP, SCHEDULE-STATUS and the like are rewritten by clients and servers. The
  addresses are compared apart from the rest (``parties``), so that the core (without
  SEQUENCE) of a copy stays that of the feeds' event, and a copy pushed before events
  named anybody differs from one that does: it is rewritten once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from icalendar import Calendar

from klash_sync.render.ical import MARKER
from klash_sync.render.participation import address, parties_text

COMPARED = (
    "UID", "SEQUENCE", "SUMMARY", "DTSTART", "DTEND", "LOCATION", "DESCRIPTION",
    "STATUS", "CATEGORIES", "TRANSP", "CLASS", MARKER,
)


@dataclass(frozen=True)
class Seen:
    """An event as read from a server: its UID, whether it is ours, and its content hash."""

    uid: str | None
    ours: bool
    hash: str | None
    sequence: int | None = None
    core: str | None = None  # the hash without SEQUENCE (and without the parties)
    partstats: tuple[tuple[str, str], ...] = ()  # (attendee address, PARTSTAT)
    at: datetime | None = None  # the later of LAST-MODIFIED and DTSTAMP: when it last changed
    when: str | None = None  # DTSTART and DTEND, compared: "is it still the same time?"


def inspect(body: bytes, uid_domain: str) -> Seen:
    """Classify and hash one stored object. Anything we cannot parse is not ours."""
    try:
        cal = Calendar.from_ical(body)
    except Exception:
        return Seen(None, False, None)
    events = cal.walk("VEVENT")
    if len(events) != 1:  # we always store exactly one VEVENT per resource
        uid = str(events[0].get("UID", "")) if events else None
        return Seen(uid or None, False, None)
    event = events[0]
    uid = str(event.get("UID", "")) or None
    ours = bool(uid and uid.endswith("@" + uid_domain) and MARKER in event)
    if not ours:
        return Seen(uid, False, None)
    try:
        sequence = int(event.get("SEQUENCE", 0))
    except (TypeError, ValueError):
        sequence = None
    attendees = event.get("ATTENDEE")
    partstats = tuple(
        (address(a), str(getattr(a, "params", {}).get("PARTSTAT", "NEEDS-ACTION")).upper())
        for a in (attendees if isinstance(attendees, list) else [attendees] if attendees else []))
    return Seen(uid, True, with_parties(content_hash(event), parties(event)), sequence,
                content_hash(event, sequence=False), partstats, _stamp(event), times(event))


def parties(event: object) -> str:
    """The ORGANIZER and ATTENDEE addresses of an event, as ``participation`` gives them."""
    def all_of(name: str) -> list[str]:
        values = event.get(name)  # type: ignore[attr-defined]
        if values is None:
            return []
        return [address(v) for v in (values if isinstance(values, list) else [values])]
    return parties_text(all_of("ORGANIZER"), all_of("ATTENDEE"))


def with_parties(digest: str, text: str) -> str:
    """A content hash with the parties: the hash itself when there are none (feeds)."""
    if not text:
        return digest
    return hashlib.sha256(f"{digest}\n{text}".encode()).hexdigest()


def times(event: object) -> str:
    """DTSTART and DTEND as compared (with TZID): a changed time changes this."""
    parts = []
    for name in ("DTSTART", "DTEND"):
        value = event.get(name)  # type: ignore[attr-defined]
        if value is not None:
            tzid = (getattr(value, "params", {}) or {}).get("TZID", "")
            parts.append(f"{name};{tzid}:{_canonical(value)}")
    return "\n".join(parts)


def _stamp(event: object) -> datetime | None:
    """The later of LAST-MODIFIED and DTSTAMP: clients that change a copy move one or both
    (we write both at the session's last change)."""
    stamps = [value for name in ("LAST-MODIFIED", "DTSTAMP")
              if isinstance(value := getattr(event.get(name), "dt", None), datetime)  # type: ignore[attr-defined]
              and value.tzinfo is not None]
    return max(stamps, default=None)


def content_hash(event: object, *, sequence: bool = True) -> str:
    """The hash of what an event means; ``sequence=False`` leaves SEQUENCE out."""
    parts = []
    for name in COMPARED:
        if name == "SEQUENCE" and not sequence:
            continue
        values = event.get(name)  # type: ignore[attr-defined]
        if values is None:
            continue
        for value in values if isinstance(values, list) else [values]:
            params = getattr(value, "params", {}) or {}
            tzid = params.get("TZID", "")
            parts.append(f"{name};{tzid}:{_canonical(value)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _canonical(value: object) -> str:
    to_ical = getattr(value, "to_ical", None)
    if to_ical is None:
        return str(value)
    raw = to_ical()
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
