"""Records the state store hands out, as plain values that every floor above may read:
a session's revision, the outcome of recording a programme version, one event of ours
on a calendar, a calendar we write to, and one entry of the change log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Revision:
    """What the state store knows of a session's history: its SEQUENCE and when it changed."""

    sequence: int
    changed: datetime
    created: datetime

    @classmethod
    def zero(cls) -> Revision:
        """A fixed revision for fingerprints, where only the content must count."""
        return cls(0, _EPOCH, _EPOCH)


@dataclass
class Revised:
    """The outcome of recording a programme version in the store."""

    revisions: dict[str, Revision]
    happened: dict[str, str]  # session id -> added | changed | removed | restored
    previous: dict[str, dict[str, Any] | None]  # summaries of changed and removed sessions, before
    first: bool  # the store knew no sessions: this is the initial import


@dataclass(frozen=True)
class Item:
    """One event of ours on one calendar, as the server last confirmed it."""

    uid: str
    href: str
    etag: str | None
    hash: str


@dataclass(frozen=True)
class CalendarRecord:
    """A calendar we write to: its key, its mentor, how to reach it (no secrets), its URL."""

    key: str
    mentor: str
    target: dict[str, Any]
    url: str | None


@dataclass(frozen=True)
class Change:
    seq: int
    at: datetime
    session: str
    kind: str
    text_fi: str
    text_en: str
    text_sv: str = ""


ANSWERS = ("accepted", "tentative", "declined")  # iCalendar PARTSTATs a mentor can give
CHANNELS = ("email", "caldav", "web")  # where an answer came from


@dataclass(frozen=True)
class Answer:
    """One answer a mentor gave for one session, as it arrived through one channel.

    ``at`` is the answer's own time (a REPLY's DTSTAMP, the LAST-MODIFIED of the mentor's
    calendar copy, the moment a web answer was posted): across channels, the latest by
    this time wins, so a reply read late from a mailbox does not undo a later click.
    ``for_sequence`` is the SEQUENCE of the version answered: an answer to an earlier time
    of the session is shown as such. ``source`` names where it came from, once (an IMAP
    message, a calendar copy's ETag, a web form post): reading the same source again
    records nothing.
    """

    mentor: str
    session: str
    answer: str  # one of ANSWERS
    via: str  # one of CHANNELS
    at: datetime
    for_sequence: int
    source: str
    comment: str = ""
