"""One sync pass: for every calendar, list → plan → apply, in a bounded pool.

Each mentor's calendar is a ``Job``: where it is (a CalDAV target or the embedded
server) and the events it should hold. A job lists the calendar with one PROPFIND,
reads only the resources it has not seen at their current ETag, asks the pure
planner what to do, and applies it with preconditions, recording every confirmed
write in the state store as it goes, so a crash mid-pass loses nothing.

Calendars we wrote to before but that no longer belong to the programme (the
mentor left, or their target changed) become cleanup jobs that remove our events,
so nothing is orphaned. One failing calendar is reported with its mentor id and a
one-line reason; it never stops the others.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import posixpath
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from klash_sync.deliver.caldav.calendar import CalDAVCalendar, Endpoint, PreconditionFailed
from klash_sync.deliver.caldav.plan import (
    Adopt,
    Create,
    Delete,
    Desired,
    Forget,
    Plan,
    Remote,
    Update,
    is_mass_delete,
    managed_count,
    plan,
    safe_name,
)
from klash_sync.deliver.caldav.pool import Connections
from klash_sync.embedded.mount import SERVICE_USER, Embedded
from klash_sync.errors import MassDeleteRefused, SettingsError, TargetConflict, TargetError, UserError
from klash_sync.programme.model import Mentor
from klash_sync.render.ical import calendar_bytes, uid
from klash_sync.render.normalise import inspect
from klash_sync.render.snapshot import Snapshot
from klash_sync.settings import Settings
from klash_sync.state.store import CalendarRecord, Item, Store

log = logging.getLogger(__name__)

_FETCH_BATCH = 200


@dataclass(frozen=True)
class Job:
    key: str
    mentor: str
    target: dict[str, Any]  # how to reach it, without secrets; stored for later cleanup
    desired: Mapping[str, Desired]
    leaving: bool = False
    # For a leaving calendar: the mentor's current calendars. Cleanup waits until each
    # has been found, and deletes nothing if one of them is the same collection.
    successors: tuple[str, ...] = ()
    title: str = ""  # the name of a calendar we create: the mentor's feed title


@dataclass
class CalendarResult:
    key: str
    mentor: str
    ok: bool
    error: str | None = None
    plan: Plan | None = None
    created: int = 0
    updated: int = 0
    deleted: int = 0
    restored: list[str] = field(default_factory=list)
    raised: list[str] = field(default_factory=list)  # session ids whose SEQUENCE a server made us raise
    requests: int = 0
    seconds: float = 0.0
    leaving: bool = False

    @property
    def changed(self) -> int:
        return self.created + self.updated + self.deleted


@dataclass
class SyncReport:
    results: list[CalendarResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[CalendarResult]:
        return [r for r in self.results if not r.ok]


def target_of(mentor: Mentor, settings: Settings) -> dict[str, Any] | None:
    """The target description for a mentor, or None when they get feeds only."""
    if mentor.caldav is not None:
        c = mentor.caldav
        return {"kind": "caldav", "url": c.url, "username": c.username,
                "password_env": c.password_env, "password_file": c.password_file,
                "calendar": c.calendar, "ca_bundle": c.ca_bundle, "auth": c.auth}
    if settings.embedded_caldav and not mentor.invite:  # invited mentors: one channel, e-mail
        return {"kind": "embedded", "calendar": mentor.id}
    return None


def calendar_key(mentor_id: str, target: dict[str, Any]) -> str:
    """Identity of one calendar: a new target for a mentor is a new calendar."""
    digest = hashlib.sha256(json.dumps(target, sort_keys=True).encode()).hexdigest()[:12]
    return f"{mentor_id}:{target['kind']}:{digest}"


def desired_for(snapshot: Snapshot, mentor_id: str) -> dict[str, Desired]:
    """The stored objects a mentor's calendar should hold: one VEVENT each, no METHOD.

    Kept in the snapshot's cache: the periodic syncs of an unchanged programme reuse them.
    """
    key = ("desired", mentor_id)
    cached: dict[str, Desired] | None = snapshot.cache.get(key)
    if cached is not None:
        return cached
    programme = snapshot.programme
    wanted = {}
    for session in programme.sessions_of(mentor_id):
        event_uid = uid(session.id, programme)
        wanted[event_uid] = Desired(event_uid, safe_name(event_uid), _object(snapshot, session.id),
                                    snapshot.hashes[session.id],
                                    snapshot.revisions[session.id].sequence,
                                    snapshot.cores.get(session.id, ""))
    snapshot.cache[key] = wanted
    return wanted


def _object(snapshot: Snapshot, session_id: str) -> bytes:
    """The stored form of one event (shared by every mentor of the session)."""
    key = ("object", session_id)
    body = snapshot.cache.get(key)
    if body is None:
        programme = snapshot.programme
        index = snapshot.cache.get("sessions")
        if index is None:
            index = snapshot.cache["sessions"] = {s.id: s for s in programme.sessions}
        session = index[session_id]
        body = calendar_bytes([snapshot.events[session_id]], programme=programme,
                              name=programme.programme.name, timed=not session.all_day, feed=False,
                              timezone=snapshot.timezone)
        snapshot.cache[key] = body
    return body


def carry_cache(previous: Snapshot, snapshot: Snapshot) -> int:
    """Reuse the previous snapshot's stored objects and desired sets where nothing changed.

    After an edit of one session, ``jobs_for`` would otherwise render every session's
    stored form again and scan every session for every mentor: work that grows with the
    programme, for an edit that concerns two mentors. An object is reused when its event
    is the very one the previous snapshot rendered (``publish`` keeps unchanged events)
    under the same programme header and time zone; a mentor's desired set when all of
    its sessions are reused and the mentor has the same sessions. Returns the mentors
    whose desired set was carried.
    """
    if previous is snapshot or previous.programme.programme != snapshot.programme.programme \
            or previous.timezone != snapshot.timezone:
        return 0
    same: set[str] = set()
    for sid, event in snapshot.events.items():
        if previous.events.get(sid) is event and previous.revisions.get(sid) == snapshot.revisions.get(sid):
            same.add(sid)
            body = previous.cache.get(("object", sid))
            if body is not None:
                snapshot.cache.setdefault(("object", sid), body)
    before: dict[str, list[str]] = {}
    for session in previous.programme.sessions:
        for mentor in session.mentors:
            before.setdefault(mentor, []).append(session.id)
    now: dict[str, list[str]] = {}
    for session in snapshot.programme.sessions:
        for mentor in session.mentors:
            now.setdefault(mentor, []).append(session.id)
    carried = 0
    for mentor, sids in now.items():
        wanted = previous.cache.get(("desired", mentor))
        if wanted is not None and before.get(mentor) == sids and all(sid in same for sid in sids):
            snapshot.cache.setdefault(("desired", mentor), wanted)
            carried += 1
    return carried


def jobs_for(snapshot: Snapshot, settings: Settings, store: Store) -> list[Job]:
    """The programme's calendars, then the cleanup of calendars it no longer uses."""
    jobs = []
    current: dict[str, list[str]] = {}
    for mentor in snapshot.programme.mentors:
        target = target_of(mentor, settings)
        if target is None:
            continue
        key = calendar_key(mentor.id, target)
        current.setdefault(mentor.id, []).append(key)
        title = f"{snapshot.programme.programme.name} – {mentor.name}"  # as the mentor's feed
        jobs.append(Job(key, mentor.id, target, desired_for(snapshot, mentor.id), title=title))
    keys = {k for ks in current.values() for k in ks}
    for key, record in sorted(store.calendars().items()):
        if key not in keys:
            jobs.append(Job(key, record.mentor, record.target, {}, leaving=True,
                            successors=tuple(current.get(record.mentor, ()))))
    return jobs


def same_collection(a: str, b: str) -> bool:
    """Whether two collection URLs name one collection (case of host, default port, slashes)."""
    return _collection_id(a) == _collection_id(b)


@functools.lru_cache(maxsize=65536)  # claim_calendar compares with every calendar, every sync
def _collection_id(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    path = posixpath.normpath(unquote(parts.path) or "/").rstrip("/") + "/"
    return scheme, (parts.hostname or "").lower(), port, path


def session_of(event_uid: str) -> str:
    return event_uid.rsplit("@", 1)[0]


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
        calendar_factory: Callable[[Endpoint, str | None, bool], CalDAVCalendar] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedded = embedded
        self.dav_base = dav_base
        self.environ = environ if environ is not None else os.environ
        self.clock = clock
        # (endpoint, known collection URL, read-only) -> the calendar to sync; a test seam
        # (the in-memory calendar of the tests), CalDAVCalendar on shared connections otherwise.
        self.calendar_factory = calendar_factory
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
                create_here=True,
            )
        return Endpoint(
            url=t["url"], username=t["username"], password=self._password(job),
            calendar=t["calendar"], ca_bundle=t.get("ca_bundle"),
            timeout=self.settings.request_timeout, auth=t.get("auth", "basic"),
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
        calendar: CalDAVCalendar | None = None
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
            if self.calendar_factory is not None:
                calendar = self.calendar_factory(endpoint, known, dry_run)
            else:
                calendar = CalDAVCalendar(endpoint, collection_url=known, connections=self.connections,
                                          readonly=dry_run)
            with self.connections.slot(endpoint.url):
                self._sync(job, calendar, uid_domain, result, allow_mass_delete, dry_run)
            result.ok = True
        except (TargetError, UserError) as e:
            result.error = _one_line(e)
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

    def _sync(self, job: Job, cal: CalDAVCalendar, uid_domain: str, result: CalendarResult,
              allow_mass_delete: bool, dry_run: bool) -> None:
        if job.leaving and self._kept(job):
            return
        url = cal.open()
        if job.leaving:
            if self._same_as_current(job, url, dry_run):
                return
        elif not dry_run:
            taken = self.store.claim_calendar(CalendarRecord(job.key, job.mentor, job.target, url),
                                              same_collection)
            if taken:
                log.info("calendar of %s: %s is the calendar known before as %s; kept as it is",
                         job.mentor, url, ", ".join(taken))
        state = self.store.items(job.key)
        remote = self._remote(job, cal, state, uid_domain, dry_run)
        desired = job.desired
        if not dry_run and self._raise_floors(job, remote, result):
            # Those events are written next round, above the server's SEQUENCE; until
            # then they are left exactly as the server has them.
            stale = {u for u in desired if session_of(u) in result.raised}
            desired = {u: d for u, d in desired.items() if u not in stale}
            remote = {h: r for h, r in remote.items() if r.uid not in stale}
            state = {u: i for u, i in state.items() if u not in stale}
        collection = urlsplit(url).path
        todo = plan(desired, remote, state, collection=collection)
        result.plan = todo
        if is_mass_delete(todo, managed_count(remote)) and not allow_mass_delete:
            raise MassDeleteRefused(
                f"refusing to delete {len(todo.of(Delete))} of {managed_count(remote)} events of "
                f"ours from {job.mentor}'s calendar; if that is intended, run "
                "`klash-sync sync --allow-mass-delete`"
            )
        if dry_run:
            return
        for action in todo.actions:
            self._apply(job, cal, action, uid_domain, result)
        if job.leaving and not job.desired:
            self.store.forget_calendar(job.key)
            log.info("calendar of %s: removed our events from a calendar no longer in use",
                     job.mentor)

    def _kept(self, job: Job) -> bool:
        """A leaving calendar that must not be cleaned now (True) or may be (False).

        Its record may already have been taken over by a current calendar found at the
        same collection (then there is nothing to clean); and while one of the mentor's
        current calendars has not been found yet, it may turn out to be this very
        collection, so cleanup waits for it.
        """
        if self.store.calendar(job.key) is None:
            return True
        for key in job.successors:
            record = self.store.calendar(key)
            if record is None or record.url is None:
                raise TargetConflict("cleanup waits until the mentor's new calendar has been found")
        return False

    def _same_as_current(self, job: Job, url: str, dry_run: bool) -> bool:
        """True if a calendar of the programme is this collection: then only forget the old name."""
        for record in self.store.calendars().values():
            if record.key != job.key and record.url and same_collection(record.url, url):
                if not dry_run:
                    self.store.forget_calendar(job.key)
                log.info("calendar of %s: %s is still in use under another description; "
                         "nothing deleted", job.mentor, url)
                return True
        return False

    def _raise_floors(self, job: Job, remote: Mapping[str, Remote], result: CalendarResult) -> bool:
        """Lift SEQUENCEs the server holds at or above ours; True if any was lifted.

        A write over one of our events must carry a SEQUENCE above the server's copy, or
        clients may ignore it; a copy with the same content must never show a higher
        SEQUENCE than our feeds. The store is raised; the caller publishes the programme
        again (feeds included) and this calendar is synced with the new numbers.
        """
        stale = set()
        for r in remote.values():
            wanted = job.desired.get(r.uid or "")
            if not r.ours or r.sequence is None or wanted is None:
                continue
            need = r.sequence if r.core == wanted.core else r.sequence + 1
            if need > wanted.sequence:
                # Raised here, or already by another calendar of the same session this pass:
                # either way this job's copy is stale and must not be written.
                self.store.raise_sequence(session_of(wanted.uid), need, self.clock())
                stale.add(session_of(wanted.uid))
        result.raised = sorted(stale)
        return bool(stale)

    def _remote(self, job: Job, cal: CalDAVCalendar, state: Mapping[str, Item], uid_domain: str,
                dry_run: bool) -> dict[str, Remote]:
        listing = cal.listing()
        ours_by_href = {item.href: item for item in state.values()}
        foreign = self.store.foreign(job.key)
        remote: dict[str, Remote] = {}
        unknown = []
        for href, etag in listing.items():
            known = ours_by_href.get(href)
            if known is not None and (known.etag is None or known.etag == etag):
                remote[href] = Remote(href, etag, True, known.uid, known.hash)
                if known.etag is None and etag is not None and not dry_run:
                    self.store.put_item(job.key, Item(known.uid, href, etag, known.hash))
            elif href in foreign and foreign[href] == etag and etag is not None:
                remote[href] = Remote(href, etag, False)
            else:
                unknown.append(href)
        for start in range(0, len(unknown), _FETCH_BATCH):
            batch = unknown[start:start + _FETCH_BATCH]
            for href, (etag, body) in cal.fetch(batch).items():
                seen = inspect(body, uid_domain)
                listed = listing.get(href, etag)
                remote[href] = Remote(href, listed or etag, seen.ours, seen.uid if seen.ours else None,
                                      seen.hash, seen.sequence, seen.core)
        seen_foreign = {h: r.etag for h, r in remote.items() if not r.ours}
        if not dry_run and seen_foreign != foreign:  # a no-op sync writes nothing, here too
            self.store.set_foreign(job.key, seen_foreign)
        return remote

    # ---------------------------------------------------------------- apply

    def _apply(self, job: Job, cal: CalDAVCalendar, action: object, uid_domain: str,
               result: CalendarResult) -> None:
        key = job.key
        if isinstance(action, Adopt):
            self.store.put_item(key, Item(action.uid, action.href, action.etag, action.hash))
        elif isinstance(action, Forget):
            self.store.drop_item(key, action.uid)
        elif isinstance(action, Create):
            self._create(job, cal, action, uid_domain, result)
        elif isinstance(action, Update):
            self._update(job, cal, action.uid, action.href, action.etag, action.body, action.hash,
                         uid_domain, result, restore=action.restore)
        elif isinstance(action, Delete):
            self._delete(job, cal, action, uid_domain, result)

    def _create(self, job: Job, cal: CalDAVCalendar, action: Create, uid_domain: str,
                result: CalendarResult) -> None:
        try:
            etag = cal.create(action.href, action.body)
        except PreconditionFailed:
            # Something is already there: most often our own earlier write whose answer
            # was lost. Re-read it instead of writing twice.
            current = cal.fetch([action.href]).get(action.href)
            if current is None:
                raise TargetConflict(f"{action.href} exists but cannot be read") from None
            etag, body = current
            seen = inspect(body, uid_domain)
            if not seen.ours or seen.uid != action.uid:
                raise TargetConflict(
                    f"{action.href} is taken by an event that is not ours; left untouched"
                ) from None
            if seen.hash == action.hash:
                self.store.put_item(job.key, Item(action.uid, action.href, etag, action.hash))
                return
            self._update(job, cal, action.uid, action.href, etag, action.body, action.hash,
                         uid_domain, result)
            return
        self.store.put_item(job.key, Item(action.uid, action.href, etag, action.hash))
        result.created += 1
        if action.restore:
            result.restored.append(action.uid)
            log.info("calendar of %s: put back %s, which was deleted on the server",
                     job.mentor, action.uid)

    def _update(self, job: Job, cal: CalDAVCalendar, event_uid: str, href: str, etag: str | None,
                body: bytes, digest: str, uid_domain: str, result: CalendarResult, *,
                restore: bool = False) -> None:
        for _attempt in range(3):
            try:
                new_etag = cal.update(href, body, etag)
            except PreconditionFailed:
                current = cal.fetch([href]).get(href)
                if current is None:  # deleted meanwhile: create it again
                    self._create(job, cal, Create(event_uid, href, body, digest, restore=True),
                                 uid_domain, result)
                    return
                etag, seen_body = current
                seen = inspect(seen_body, uid_domain)
                if not seen.ours or seen.uid != event_uid:
                    raise TargetConflict(f"{href} is no longer our event; left untouched") from None
                if seen.hash == digest:
                    self.store.put_item(job.key, Item(event_uid, href, etag, digest))
                    return
                continue
            self.store.put_item(job.key, Item(event_uid, href, new_etag, digest))
            result.updated += 1
            if restore:
                result.restored.append(event_uid)
                log.info("calendar of %s: restored %s, which was edited on the server",
                         job.mentor, event_uid)
            return
        raise TargetConflict(f"{href} keeps changing on the server; will try again next sync")

    def _delete(self, job: Job, cal: CalDAVCalendar, action: Delete, uid_domain: str,
                result: CalendarResult) -> None:
        etag = action.etag
        for _attempt in range(3):
            try:
                cal.delete(action.href, etag)
            except PreconditionFailed:
                current = cal.fetch([action.href]).get(action.href)
                if current is None:
                    break
                etag, body = current
                seen = inspect(body, uid_domain)
                if not seen.ours or seen.uid != action.uid:
                    log.warning("calendar of %s: %s is no longer our event; not deleted",
                                job.mentor, action.href)
                    break
                continue
            result.deleted += 1
            break
        else:
            raise TargetConflict(f"{action.href} keeps changing on the server; will try again")
        if not action.duplicate:
            self.store.drop_item(job.key, action.uid)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]
