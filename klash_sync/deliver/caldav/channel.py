"""The CalDAV push as the scheduler drives it: one unit a calendar, run by the ``Syncer``.

A unit's signature is what the calendar should hold (and whether the mentor is leaving
it), so a reload re-syncs only the calendars an edit touched; its group is the server's
origin, so at most ``KLASH_SYNC_PER_HOST`` syncs talk to one provider at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from klash_sync.deliver.base import Ask, Outcome, Unit
from klash_sync.deliver.base import origin as base_origin
from klash_sync.deliver.caldav.plan import Desired
from klash_sync.deliver.caldav.sync import Job, Syncer, carry_cache, jobs_for
from klash_sync.render.snapshot import Snapshot
from klash_sync.settings import Settings
from klash_sync.state.store import Store
from klash_sync.status import Record

log = logging.getLogger(__name__)


class Signature:
    """What a job would make the calendar hold, and whether it leaves; compared by content.

    The same desired mapping (carried over from the last snapshot) compares quickly.
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, job: Job) -> None:
        self.leaving = job.leaving
        self.successors = job.successors
        self.desired: Mapping[str, Desired] = job.desired

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Signature):
            return NotImplemented
        if self.leaving != other.leaving or self.successors != other.successors:
            return False
        if self.desired is other.desired:
            return True
        return ({u: d.body for u, d in self.desired.items()}
                == {u: d.body for u, d in other.desired.items()})


def origin(job: Job) -> str:
    """The server a job talks to: scheme://host:port, or 'embedded'."""
    url = job.target.get("url")
    if not url:
        return str(job.target.get("kind", "?"))
    return base_origin(url)


def calendar_unit(job: Job) -> Unit:
    return Unit(job.key, job.mentor, Signature(job), origin(job), job.leaving, job.successors)


class Calendars:
    """The ``Channel`` of CalDAV calendars."""

    name = "caldav"
    section = "calendars"
    unit: str | None = "calendar"
    levels: tuple[str, ...] = ()
    quiet = 0.0
    reports = False  # the scheduler records each sync's outcome

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.workers = settings.sync_workers
        self.per_group = settings.sync_per_host
        self.syncer: Syncer | None = None  # set once the service knows its own address
        self._planned: Snapshot | None = None  # the snapshot the current jobs were made from

    def items(self, snapshot: Snapshot) -> Iterable[Job]:
        if self._planned is not None and self._planned is not snapshot:
            carry_cache(self._planned, snapshot)  # an edit's cost grows with the edit, not the programme
        self._planned = snapshot
        return jobs_for(snapshot, self.settings, self.store)

    def view(self, item: Job) -> Unit:
        return calendar_unit(item)

    def run(self, item: Job, snapshot: Snapshot, ask: Ask | None) -> Outcome:
        assert self.syncer is not None
        result = self.syncer.sync_one(item, snapshot.programme.programme.uid_domain,
                                      allow_mass_delete=ask is not None and ask.allow_mass)
        if result.ok and result.changed:
            log.info("calendar of %s: %d created, %d updated, %d deleted", item.mentor,
                     result.created, result.updated, result.deleted)
        line = (f"ok      {item.mentor}: +{result.created} ~{result.updated} -{result.deleted}"
                if result.ok else f"FAILED  {item.mentor}: {result.error}")
        return Outcome(
            result.ok, result.error,
            counts={"created": result.created, "updated": result.updated, "deleted": result.deleted},
            actions={"create": result.created, "update": result.updated, "delete": result.deleted},
            failed=() if result.ok else (item.mentor,), seconds=result.seconds, lines=[line],
            republish=bool(result.raised), done=item.leaving and result.ok, result=result,
        )

    def retry_due(self) -> set[str]:
        return set()  # retries come on the scheduler's backoff

    def status(self, snapshot: Snapshot | None) -> tuple[list[Record], list[str]] | None:
        return None  # the scheduler records each sync's outcome

    def close(self, finished: bool) -> None:
        if self.syncer is not None and finished:
            self.syncer.close()  # the kept-alive connections to the CalDAV servers
