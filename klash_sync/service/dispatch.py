"""Which units of a channel run next: the ones an edit changed first, then the rest.

A unit is what one run of a channel delivers: one calendar (CalDAV), the outbox
(invitations). Each channel describes its units with ``Unit``; this queue, one per
channel, is the same for all of them.

An organiser who fixes a typo expects the mentors concerned to see it in seconds,
whatever the number of mentors. So a reload does not mark every unit due: it compares
each unit's ``signature`` (what it should deliver) with what the previous programme
wanted and marks only the units that differ, *urgent*, ahead of the periodic pass. The
periodic pass still visits every unit, to put drift on the servers right. A channel
with a quiet period (``quiet``: invitations wait until the organiser has stopped
editing) holds a changed unit until the programme has been quiet that long.

Units are handed to the worker pool only when a worker is free (never queued in it),
so a run never starts with a desired state older than the one the daemon holds when it
starts; a unit whose run is going on when its content changes stays due and runs
again, with the new content, as soon as that run ends. At most ``per_group`` units of
one group (the server they talk to) run at a time, so one provider is never hit by
every worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar

from klash_sync.clock import Clock
from klash_sync.deliver.base import Unit
from klash_sync.deliver.caldav.channel import calendar_unit
from klash_sync.deliver.caldav.sync import Job

T = TypeVar("T")


class Due(Generic[T]):
    """A channel's to-do list: its items by key, which are due, which are urgent."""

    def __init__(self, per_group: int, view: Callable[[T], Unit], *, quiet: float = 0.0,
                 clock: Clock | None = None) -> None:
        self.per_group = per_group
        self.view = view
        self.quiet = quiet
        self.clock = clock or Clock()
        self.jobs: dict[str, T] = {}
        self.units: dict[str, Unit] = {}
        self.pending: set[str] = set()
        self.urgent: set[str] = set()
        self._seen: dict[str, object] = {}
        self._not_before: dict[str, float] = {}

    def refresh(self, items: Iterable[T], *, all_due: bool) -> set[str]:
        """Take a new list of items; return the keys whose content changed (now urgent).

        With ``all_due`` (the periodic pass) every unit becomes due; otherwise only the
        changed ones join those already due (failed ones waiting for a retry).
        """
        fresh = {}
        units = {}
        for item in items:
            unit = self.view(item)
            fresh[unit.key], units[unit.key] = item, unit
        changed = {k for k, u in units.items()
                   if k not in self._seen or self._seen[k] != u.signature}
        self._seen = {k: u.signature for k, u in units.items()}
        self.jobs, self.units = fresh, units
        if self.quiet > 0:  # each change restarts the quiet period
            until = self.clock.monotonic() + self.quiet
            self._not_before = {k: (until if k in changed else t)
                                for k, t in self._not_before.items() if k in fresh}
            self._not_before.update({k: until for k in changed})
        keep = set(fresh) if all_due else self.pending & set(fresh)
        self.pending = keep | changed
        self.urgent = (self.urgent & set(fresh)) | changed
        return changed

    def now(self, key: str) -> None:
        """Due at once, ahead of the rest and past any quiet period (an operator asked)."""
        self.pending.add(key)
        self.urgent.add(key)
        self._not_before.pop(key, None)

    def drop(self, key: str) -> None:
        """A unit that has done its last run (a calendar left and cleaned up)."""
        self.jobs.pop(key, None)
        self.units.pop(key, None)
        self.pending.discard(key)
        self.urgent.discard(key)

    def take(self, inflight: Mapping[str, object], free: int,
             ready: Callable[[str], bool]) -> list[str]:
        """Up to ``free`` due keys to start now: urgent first, ``last`` ones after the rest.

        ``ready(key)`` says whether a key is past its backoff; urgent keys skip it (a new
        desired state is a new reason to try). A ``last`` unit waits while one it comes
        after is still due or running.
        """
        if free <= 0 or not self.pending:
            return []
        busy: dict[str, int] = {}
        for key in inflight:
            unit = self.units.get(key)
            if unit is not None:
                busy[unit.group] = busy.get(unit.group, 0) + 1
        chosen: list[str] = []
        for key in self._startable(inflight, ready):
            if len(chosen) >= free:
                break
            group = self.units[key].group
            if busy.get(group, 0) >= self.per_group:
                continue
            busy[group] = busy.get(group, 0) + 1
            chosen.append(key)
        self.pending.difference_update(chosen)
        self.urgent.difference_update(chosen)
        return chosen

    def waiting(self, inflight: Mapping[str, object], ready: Callable[[str], bool]) -> bool:
        """Whether some due unit could start now (with every worker free)."""
        return next(iter(self._startable(inflight, ready)), None) is not None

    def _startable(self, inflight: Mapping[str, object],
                   ready: Callable[[str], bool]) -> Iterator[str]:
        def rank(key: str) -> tuple[bool, bool, str]:
            return key not in self.urgent, self.units[key].last, key

        now = self.clock.monotonic() if self._not_before else 0.0
        for key in sorted((k for k in self.pending if k in self.units), key=rank):
            if key in inflight or self._not_before.get(key, now) > now:
                continue
            unit = self.units[key]
            if key not in self.urgent and not ready(key):
                continue
            if unit.last and any(s in self.pending or s in inflight for s in unit.after):
                continue
            yield key


class CalendarDue(Due[Job]):
    """The CalDAV channel's queue: calendars, at most ``per_host`` a server at a time."""

    def __init__(self, per_host: int) -> None:
        super().__init__(per_host, calendar_unit)
