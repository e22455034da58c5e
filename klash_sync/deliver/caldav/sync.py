"""One sync pass of the CalDAV channel: for every calendar, list → plan → apply, in a pool.

A pass takes the jobs (``jobs``: where each calendar is and what it should hold),
and for each one, in a bounded pool of workers: opens the calendar, lists it with one
PROPFIND and reads only what it has not seen (``remote.observe``), records the answers
mentors gave on their copies (``answers``), asks the pure
planner what to do (``plan``), checks the mass-change guard, and applies the plan with
preconditions (``apply``), recording every confirmed write in the state store.

Calendars of the programme go first, cleanup of calendars no longer in use after. One
failing calendar is reported with its mentor id and a one-line reason; it never stops
the others. A purge job (``Job.purge``) finds the calendar from the mentor's settings
as a sync would, whether the state store knows it or not, but never creates one, and
deletes every event the server holds that is ours (our UID domain and our marker).
The names other modules use are importable from here as before.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from klash_sync.deliver.base import one_line
from klash_sync.deliver.caldav.answers import read_back
from klash_sync.deliver.caldav.apply import Apply
from klash_sync.deliver.caldav.calendar import CalDAVCalendar, Endpoint
from klash_sync.deliver.caldav.jobs import (
    CalendarResult,
    Job,
    SyncReport,
    calendar_key,
    carry_cache,
    desired_for,
    jobs_for,
    kept,
    same_as_current,
    same_collection,
    session_of,
    target_of,
)
from klash_sync.deliver.caldav.plan import Delete, is_mass_delete, managed_count, plan
from klash_sync.deliver.caldav.pool import Connections
from klash_sync.deliver.caldav.remote import Calendar, observe, raise_floors
from klash_sync.embedded.mount import SERVICE_USER, Embedded
from klash_sync.errors import MassDeleteRefused, SettingsError, TargetError, TargetMissing, UserError
from klash_sync.render.snapshot import Snapshot
from klash_sync.settings import Settings
from klash_sync.state.store import CalendarRecord, Store

__all__ = [
    "CalendarResult", "Job", "SyncReport", "Syncer", "calendar_key", "carry_cache", "desired_for",
    "jobs_for", "same_collection", "session_of", "target_of",
]

log = logging.getLogger(__name__)

CalendarFactory = Callable[..., Calendar]


class Syncer:
    """Runs sync passes. ``dav_base`` is where the embedded server answers (http://host:port)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        embedded: Embedded | None = None,
        dav_base: str | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        calendar_factory: CalendarFactory | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedded = embedded
        self.dav_base = dav_base
        self.environ = environ if environ is not None else os.environ
        self.clock = clock
        # How a calendar is opened: ``CalDAVCalendar(endpoint, collection_url=…,
        # connections=…, readonly=…)``, or, in tests, a calendar in memory with the same
        # methods, so that the real listing and apply run against a known state.
        self.calendar_factory: CalendarFactory = calendar_factory or CalDAVCalendar
        # One pool of connections per server, kept across calendars and passes.
        self.connections = Connections(per_host=settings.sync_per_host)

    def close(self) -> None:
        self.connections.close()

    # ------------------------------------------------------------ endpoints

    def endpoint(self, job: Job) -> Endpoint:
        t = job.target
        if t["kind"] == "embedded":
            if self.embedded is None or self.dav_base is None:
                raise SettingsError("the embedded CalDAV server is not available in this process")
            self.embedded.ensure_home(t["calendar"])
            return Endpoint(
                url=self.dav_base + Embedded.calendar_path(t["calendar"]),
                username=SERVICE_USER, password=self.embedded.service_password,
                calendar=job.title or f"Klash – {job.mentor}", timeout=self.settings.request_timeout,
                create_here=True, create=not job.purge,
            )
        return Endpoint(
            url=t["url"], username=t["username"], password=self._password(job),
            calendar=t["calendar"], ca_bundle=t.get("ca_bundle"),
            timeout=self.settings.request_timeout, auth=t.get("auth", "basic"), create=not job.purge,
        )

    def _password(self, job: Job) -> str:
        from klash_sync.logs import register_secret

        t = job.target
        if t.get("password_env"):
            value = self.environ.get(t["password_env"])
            if not value:
                raise SettingsError(
                    f"mentor '{job.mentor}': the environment variable {t['password_env']} "
                    "(password_env) is not set"
                )
        else:
            try:
                value = Path(t["password_file"]).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise SettingsError(
                    f"mentor '{job.mentor}': cannot read password_file {t['password_file']} "
                    f"({e.strerror})"
                ) from None
        register_secret(value)
        return value

    # ------------------------------------------------------------------ run

    def run(
        self,
        snapshot: Snapshot,
        *,
        allow_mass_delete: bool = False,
        dry_run: bool = False,
        only: set[str] | None = None,
        on_result: Callable[[CalendarResult], None] | None = None,
        republish: Callable[[Snapshot], Snapshot] | None = None,
    ) -> SyncReport:
        """One pass over every calendar (or those in ``only``).

        When a server held a SEQUENCE at or above ours, the store was raised and those
        events were left alone; with ``republish`` (which publishes the programme again
        and returns the new snapshot) the pass is repeated, at most twice, so that they
        are written above the server's number in the same command.
        """
        report = self._pass(snapshot, allow_mass_delete, dry_run, only, on_result)
        for _round in range(2):
            if republish is None or dry_run or not any(r.raised for r in report.results):
                break
            snapshot = republish(snapshot)
            again = self._pass(snapshot, allow_mass_delete, dry_run, only, on_result)
            merged = {r.key: r for r in report.results}
            for r in again.results:
                first = merged.get(r.key)
                if first is not None:
                    r.requests += first.requests
                    r.created += first.created
                    r.updated += first.updated
                    r.deleted += first.deleted
                    r.restored = first.restored + r.restored
                    r.raised = sorted(set(first.raised) | set(r.raised))
                merged[r.key] = r
            report = SyncReport(list(merged.values()))
        return report

    def _pass(self, snapshot: Snapshot, allow_mass_delete: bool, dry_run: bool,
              only: set[str] | None, on_result: Callable[[CalendarResult], None] | None) -> SyncReport:
        jobs = jobs_for(snapshot, self.settings, self.store)
        if only is not None:
            jobs = [j for j in jobs if j.key in only or j.mentor in only]
        domain = snapshot.programme.programme.uid_domain

        def work(job: Job) -> CalendarResult:
            result = self.sync_one(job, domain, allow_mass_delete=allow_mass_delete, dry_run=dry_run)
            if on_result is not None:
                on_result(result)
            return result

        # Calendars of the programme first, cleanup after: a leaving calendar that is the
        # same collection as a current one must be known as such before anything is deleted.
        results: list[CalendarResult] = []
        with ThreadPoolExecutor(max_workers=self.settings.sync_workers,
                                thread_name_prefix="sync") as pool:
            for phase in ([j for j in jobs if not j.leaving], [j for j in jobs if j.leaving]):
                results.extend(pool.map(work, phase))
        return SyncReport(results)

    def sync_one(self, job: Job, uid_domain: str, *, allow_mass_delete: bool = False,
                 dry_run: bool = False) -> CalendarResult:
        started = time.monotonic()
        result = CalendarResult(job.key, job.mentor, ok=False, leaving=job.leaving)
        calendar: Calendar | None = None
        try:
            record = self.store.calendar(job.key)
            endpoint = self.endpoint(job)
            known = record.url if record else None
            if record and known and endpoint.create_here:
                # The embedded server's port may differ from run to run: keep only the path.
                if urlsplit(known).path != urlsplit(endpoint.url).path:
                    # Its calendars have moved (Embedded.migrate): our records follow them,
                    # so the moved events are recognised without reading or writing them.
                    # Probe the new place rather than assume it, in case nothing was there.
                    if not dry_run:
                        self.store.move_calendar(job.key, endpoint.url)
                    known = None
                else:
                    known = endpoint.url
            calendar = self.calendar_factory(endpoint, collection_url=known,
                                             connections=self.connections, readonly=dry_run)
            with self.connections.slot(endpoint.url):
                self._sync(job, calendar, uid_domain, result, allow_mass_delete, dry_run)
            result.ok = True
        except (TargetError, UserError) as e:
            result.error = one_line(e)
            log.warning("calendar of %s: %s", job.mentor, result.error)
        except Exception as e:  # a bug must not stop the other calendars
            result.error = f"internal error: {type(e).__name__}"
            log.exception("calendar of %s: unexpected error", job.mentor)
        finally:
            if calendar is not None:
                result.requests = calendar.requests
                calendar.close()
            result.seconds = time.monotonic() - started
        return result

    def _sync(self, job: Job, cal: Calendar, uid_domain: str, result: CalendarResult,
              allow_mass_delete: bool, dry_run: bool) -> None:
        if job.leaving and not job.purge and kept(self.store, job):
            return
        try:  # a purge looks wherever the mentor's settings lead, known to the store or not
            url = cal.open()
            if job.leaving:
                if not job.purge and same_as_current(self.store, job, url, dry_run):
                    return
            elif not dry_run:
                taken = self.store.claim_calendar(CalendarRecord(job.key, job.mentor, job.target, url),
                                                  same_collection)
                if taken:
                    log.info("calendar of %s: %s is the calendar known before as %s; kept as it is",
                             job.mentor, url, ", ".join(taken))
            state = self.store.items(job.key)
            remote = observe(self.store, job, cal, state, uid_domain, dry_run)
        except TargetMissing as e:
            if not job.purge:
                raise
            result.missing = e.reason  # no calendar there: nothing of ours either
            if not dry_run:
                self.store.forget_calendar(job.key)
            return
        result.found = managed_count(remote)
        if not dry_run:  # the mentor's answers on their copies, before anything is written
            read_back(self.store, job, remote.values(), self.clock())
        desired = job.desired
        if not dry_run and raise_floors(self.store, job, remote, result, self.clock):
            # Those events are written next round, above the server's SEQUENCE; until
            # then they are left exactly as the server has them.
            stale = {u for u in desired if session_of(u) in result.raised}
            desired = {u: d for u, d in desired.items() if u not in stale}
            remote = {h: r for h, r in remote.items() if r.uid not in stale}
            state = {u: i for u, i in state.items() if u not in stale}
        collection = urlsplit(url).path
        todo = plan(desired, remote, state, collection=collection)
        result.plan = todo
        if is_mass_delete(todo, managed_count(remote)) and not (allow_mass_delete or job.purge):
            raise MassDeleteRefused(
                f"refusing to delete {len(todo.of(Delete))} of {managed_count(remote)} events of "
                f"ours from {job.mentor}'s calendar; if that is intended, run "
                "`klash-sync sync --allow-mass-delete`"
            )
        if dry_run:
            return
        applying = Apply(self.store, job, cal, uid_domain, result, self.clock)
        for action in todo.actions:
            applying.apply(action)
        if job.leaving and not job.desired:
            self.store.forget_calendar(job.key)
            log.info("calendar of %s: removed our events (%d found, %d deleted)%s", job.mentor,
                     result.found, result.deleted, " on purge" if job.purge else " no longer in use")
