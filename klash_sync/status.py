"""What the running service knows and shows: the programme in use, its errors, and one record
per channel and recipient.

The service fills it (the scheduler records every delivery's outcome here); the page,
/healthz, /metrics and the CLI read it, and nothing else: none of them looks inside a
channel. A record has one shape for every channel (a calendar synced over CalDAV, a
mentor's invitations by e-mail, the next channel), so status is shown, judged healthy
and exported once, above the channels. It sits on its own floor, above rendering (it
holds the current ``Snapshot``) and below the web and the channels.

Each attribute is replaced whole, never mutated in place, so a request that reads
``live.snapshot`` or a channel once sees one consistent value even while the service
swaps in the next one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from klash_sync.render.attendance import SessionAttendance
from klash_sync.render.snapshot import Snapshot


@dataclass(frozen=True)
class Record:
    """The latest word on one unit of one channel: a calendar, a mentor's invitations.

    ``counts`` are the channel's own numbers (created/updated/deleted by the last sync;
    sent/pending/failed in the outbox). A ``failed`` count means refused for good, not
    retried with the same content: unhealthy at once, not only after a while.
    """

    channel: str
    key: str  # the unit the scheduler runs: a calendar's key, a mentor's id
    mentor: str  # the recipient
    ok: bool
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    failing_since: datetime | None = None
    error: str | None = None  # one line: the adapter's reason or the server's own answer
    counts: Mapping[str, int] = field(default_factory=dict)
    sessions: tuple[str, ...] = ()  # sessions not (yet) delivered, where the channel knows them

    def count(self, name: str) -> int:
        return self.counts.get(name, 0)

    @property
    def refused(self) -> bool:
        return self.count("failed") > 0

    @property
    def calendar(self) -> str:
        """The key under the name the CalDAV channel's readers know it by."""
        return self.key

    def stale(self, now: datetime, after: float) -> bool:
        """Failing for longer than ``after`` seconds."""
        return (not self.ok and self.failing_since is not None
                and (now - self.failing_since).total_seconds() > after)


@dataclass(frozen=True)
class ChannelStatus:
    """One channel as the service runs it: its records and what else is wrong with it.

    ``section`` names it on /healthz, /metrics and in problems ("calendars"); ``unit``
    names a record's key in /healthz when it is not the mentor ("calendar"); ``levels``
    are the counts that are current levels (exported as gauges), not one run's numbers.
    """

    name: str
    section: str
    unit: str | None = None
    levels: tuple[str, ...] = ()
    records: Mapping[str, Record] = field(default_factory=dict)
    problems: tuple[str, ...] = ()  # e.g. "cancellations held", "no SMTP server"

    def ordered(self) -> list[Record]:
        return sorted(self.records.values(), key=lambda r: (r.mentor, r.key))


def _since(standing: str | None, message: str | None, since: datetime | None,
           at: datetime | None) -> datetime | None:
    """When a standing problem began: kept while it stands (whatever it now says), gone with it."""
    if message is None:
        return None
    return since if standing is not None else at


class Live:
    """The service's current view; safe to read from any thread.

    A channel that is absent is not run here (the static export has none), so readers
    show nothing for it rather than numbers that nobody keeps up to date.
    """

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self._lock = threading.Lock()
        self.snapshot = snapshot
        self.programme_error: str | None = None
        self.programme_error_at: datetime | None = None
        self.state_error: str | None = None  # the state store can no longer be written
        self.state_error_at: datetime | None = None
        # The programme on disk is valid but not in use: applying it needs the state store.
        self.unapplied: str | None = None
        self.unapplied_at: datetime | None = None
        self.channels: dict[str, ChannelStatus] = {}
        # Who is coming, as the store last said (None: nobody keeps it here, e.g. the export).
        self.attendance: tuple[SessionAttendance, ...] | None = None

    # ------------------------------------------------------------- programme

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

    def set_state_error(self, message: str | None, at: datetime | None = None) -> None:
        """The state store cannot be written (``None``: it can again). The first moment stays."""
        with self._lock:
            self.state_error_at = _since(self.state_error, message, self.state_error_at, at)
            self.state_error = message

    def set_unapplied(self, message: str | None, at: datetime | None = None) -> None:
        """A valid programme on disk waits to be applied (``None``: it has been). The first moment stays."""
        with self._lock:
            self.unapplied_at = _since(self.unapplied, message, self.unapplied_at, at)
            self.unapplied = message

    def set_attendance(self, rows: list[SessionAttendance]) -> None:
        """Mentors' answers per session, refreshed by the service after each pass and answer."""
        self.attendance = tuple(rows)

    # -------------------------------------------------------------- channels

    def open(self, name: str, section: str, *, unit: str | None = None,
             levels: tuple[str, ...] = ()) -> None:
        """The service runs this channel: from now on its (possibly empty) status is shown."""
        with self._lock:
            if name not in self.channels:
                self.channels = {**self.channels, name: ChannelStatus(name, section, unit, levels)}

    def channel(self, name: str) -> ChannelStatus | None:
        return self.channels.get(name)

    def records(self, name: str) -> list[Record]:
        """A channel's records by mentor; none when the channel is not run."""
        found = self.channels.get(name)
        return found.ordered() if found is not None else []

    def record(self, record: Record) -> None:
        """Store a unit's newest outcome, keeping when its current failure began and
        when it last succeeded."""
        with self._lock:
            current = self.channels[record.channel]
            previous = current.records.get(record.key)
            if not record.ok and previous is not None:
                record = replace(record, last_success=previous.last_success,
                                 failing_since=(previous.failing_since if not previous.ok
                                                else record.failing_since))
            records = {**current.records, record.key: record}
            self.channels = {**self.channels, record.channel: replace(current, records=records)}

    def replace(self, name: str, records: Iterable[Record],
                problems: Iterable[str] | None = None) -> None:
        """A channel's records all at once (a channel that reads its status from the store)."""
        with self._lock:
            current = self.channels[name]
            changed = replace(current, records={r.key: r for r in records})
            if problems is not None:
                changed = replace(changed, problems=tuple(problems))
            self.channels = {**self.channels, name: changed}

    def forget(self, name: str, keep: set[str]) -> None:
        """Drop the records of units the programme no longer has."""
        with self._lock:
            current = self.channels.get(name)
            if current is None:
                return
            records = {k: v for k, v in current.records.items() if k in keep}
            self.channels = {**self.channels, name: replace(current, records=records)}

    @property
    def calendars(self) -> dict[str, Record]:
        """The CalDAV channel's records by calendar key (what its readers call them)."""
        found = self.channels.get("caldav")
        return dict(found.records) if found is not None else {}
