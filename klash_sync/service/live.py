"""What a running service currently knows, shared by the syncer, the watcher and the web app.

Each attribute is replaced whole (never mutated in place), so a request that reads
``live.snapshot`` once sees one consistent programme even while a reload swaps in
the next one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime

from klash_sync.deliver.invite.outbox import MentorOutbox
from klash_sync.render.snapshot import Snapshot


@dataclass(frozen=True)
class CalendarStatus:
    """The last sync of one calendar, as /healthz and the pages report it."""

    calendar: str
    mentor: str
    ok: bool
    last_sync: datetime | None = None
    last_success: datetime | None = None
    failing_since: datetime | None = None
    error: str | None = None
    created: int = 0
    updated: int = 0
    deleted: int = 0


class Live:
    """The service's current view; safe to read from any thread."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self._lock = threading.Lock()
        self.snapshot = snapshot
        self.programme_error: str | None = None
        self.programme_error_at: datetime | None = None
        self.calendars: dict[str, CalendarStatus] = {}
        self.state_error: str | None = None  # the state store can no longer be written
        # The e-mail invitations' outbox per mentor, as the invitation worker last read it;
        # None where no worker runs (the static export), so the page shows nothing rather
        # than counts that nobody keeps up to date.
        self.invitations: dict[str, MentorOutbox] | None = None

    def set_snapshot(self, snapshot: Snapshot, *, from_file: bool = True) -> None:
        """A new programme is served. One read from the file clears a file error; one
        republished from the current programme (``from_file=False``) leaves it standing."""
        with self._lock:
            self.snapshot = snapshot
            if from_file:
                self.programme_error = None
                self.programme_error_at = None

    def set_error(self, message: str, at: datetime) -> None:
        with self._lock:
            self.programme_error = message
            self.programme_error_at = at

    def set_state_error(self, message: str) -> None:
        with self._lock:
            self.state_error = message

    def set_invitations(self, status: dict[str, MentorOutbox]) -> None:
        """The outbox's newest per-mentor counts (replaced whole, like the calendars)."""
        with self._lock:
            self.invitations = dict(status)

    def record(self, status: CalendarStatus) -> None:
        """Store a calendar's newest result, keeping when its current failure began."""
        with self._lock:
            previous = self.calendars.get(status.calendar)
            if not status.ok and previous is not None and not previous.ok:
                status = replace(status, failing_since=previous.failing_since,
                                 last_success=previous.last_success)
            elif not status.ok and previous is not None:
                status = replace(status, last_success=previous.last_success)
            calendars = dict(self.calendars)
            calendars[status.calendar] = status
            self.calendars = calendars

    def forget(self, keep: set[str]) -> None:
        with self._lock:
            self.calendars = {k: v for k, v in self.calendars.items() if k in keep}
