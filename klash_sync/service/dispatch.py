"""Which calendar the daemon syncs next: the ones an edit changed first, then the rest.

An organiser who fixes a typo expects the mentors concerned to see it in seconds,
whatever the number of mentors. So a reload does not mark every calendar due: it
compares each calendar's desired content with what the previous programme wanted and
marks only the calendars that differ, *urgent*, ahead of the periodic pass. The
periodic pass still visits every calendar, to put drift on the servers right.

Jobs are handed to the worker pool only when a worker is free (never queued in it),
so a job never starts with a desired state older than the one the daemon holds when
it starts; a calendar whose job is running when its content changes stays due and
runs again, with the new content, as soon as that job ends. At most ``per_host``
jobs run against one origin at a time, so one provider is never hit by every worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from klash_sync.deliver.base import origin as base_origin
from klash_sync.deliver.caldav.plan import Desired
from klash_sync.deliver.caldav.sync import Job

Signature = tuple[bool, tuple[str, ...], Mapping[str, Desired]]


def signature(job: Job) -> Signature:
    """What a job would make the calendar hold, and whether it leaves."""
    return job.leaving, job.successors, job.desired


def _same(a: Signature | None, b: Signature) -> bool:
    """Equal content; the same desired mapping (carried over from the last snapshot) is quick."""
    if a is None or a[0] != b[0] or a[1] != b[1]:
        return False
    if a[2] is b[2]:
        return True
    return {u: d.body for u, d in a[2].items()} == {u: d.body for u, d in b[2].items()}


def origin(job: Job) -> str:
    """The server a job talks to: scheme://host:port, or 'embedded'."""
    url = job.target.get("url")
    if not url:
        return str(job.target.get("kind", "?"))
    return base_origin(url)


@dataclass
class Due:
    """The daemon's to-do list: jobs by key, which are due, which are urgent."""

    per_host: int
    jobs: dict[str, Job] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)
    urgent: set[str] = field(default_factory=set)
    _seen: dict[str, Signature] = field(default_factory=dict)

    def refresh(self, jobs: Iterable[Job], *, all_due: bool) -> set[str]:
        """Take a new job list; return the keys whose content changed (now urgent).

        With ``all_due`` (the periodic pass) every calendar becomes due; otherwise only
        the changed ones join those already due (failed ones waiting for a retry).
        """
        fresh = {j.key: j for j in jobs}
        changed = {k for k, j in fresh.items() if not _same(self._seen.get(k), signature(j))}
        self._seen = {k: signature(j) for k, j in fresh.items()}
        self.jobs = fresh
        keep = set(fresh) if all_due else self.pending & set(fresh)
        self.pending = keep | changed
        self.urgent = (self.urgent & set(fresh)) | changed
        return changed

    def take(self, inflight: Mapping[str, object], free: int,
             ready: Callable[[str], bool]) -> list[str]:
        """Up to ``free`` due keys to start now: urgent first, leaving ones after the rest.

        ``ready(key)`` says whether a key is past its backoff; urgent keys skip it (a new
        desired state is a new reason to try). A leaving calendar waits while one of the
        mentor's current calendars is still due or running: cleanup needs them found.
        """
        if free <= 0 or not self.pending:
            return []
        busy: dict[str, int] = {}
        for key in inflight:
            job = self.jobs.get(key)
            if job is not None:
                host = origin(job)
                busy[host] = busy.get(host, 0) + 1
        chosen: list[str] = []
        for key in self._startable(inflight, ready):
            if len(chosen) >= free:
                break
            host = origin(self.jobs[key])
            if busy.get(host, 0) >= self.per_host:
                continue
            busy[host] = busy.get(host, 0) + 1
            chosen.append(key)
        self.pending.difference_update(chosen)
        self.urgent.difference_update(chosen)
        return chosen

    def waiting(self, inflight: Mapping[str, object], ready: Callable[[str], bool]) -> bool:
        """Whether some due job could start now (with every worker free)."""
        return next(iter(self._startable(inflight, ready)), None) is not None

    def _startable(self, inflight: Mapping[str, object],
                   ready: Callable[[str], bool]) -> Iterator[str]:
        def rank(key: str) -> tuple[bool, bool, str]:
            return key not in self.urgent, self.jobs[key].leaving, key

        for key in sorted((k for k in self.pending if k in self.jobs), key=rank):
            if key in inflight:
                continue
            job = self.jobs[key]
            if key not in self.urgent and not ready(key):
                continue
            if job.leaving and any(s in self.pending or s in inflight for s in job.successors):
                continue
            yield key
