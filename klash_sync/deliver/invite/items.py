"""What the invitation channel keeps and decides, as plain values: a message sent
(``Sent``), one on its way (``Pending``), one to send (``Invitation``), and a pass's plan
(``InvitePlan``). The outbox stores the first two; the planner makes the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

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
    reason: str  # new | changed | cancelled | removed | taken off | address changed | handover
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
