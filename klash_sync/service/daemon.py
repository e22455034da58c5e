"""``klash-sync run``: serve the feeds and the embedded CalDAV server, and keep calendars in sync.

One process, three kinds of thread:

* the main loop (``tick`` every 0.1 s): runs the periodic schedule, reloads the
  programme once a burst of file events has settled, collects finished calendar
  syncs and starts the ones that are due and not backing off;
* a pool of sync workers, one calendar each, so a slow or failing server occupies
  one worker and never delays the feeds or the other calendars;
* waitress's threads, serving whatever snapshot is current.

A programme that fails validation is never applied: the last good one keeps being
served and synced, and the error is shown on /healthz and the page until the file
is fixed. SIGHUP reloads at once; SIGTERM and SIGINT stop gracefully.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from klash_sync.clock import Clock
from klash_sync.deliver.caldav.sync import CalendarResult, Job, Syncer, carry_cache, jobs_for
from klash_sync.embedded.mount import Embedded
from klash_sync.errors import ProgrammeError
from klash_sync.programme.load import parse
from klash_sync.render.snapshot import Snapshot
from klash_sync.service.dispatch import Due
from klash_sync.service.invites import InviteWorker
from klash_sync.service.live import CalendarStatus, Live
from klash_sync.service.observe import Metrics, health
from klash_sync.service.operator import Operator
from klash_sync.service.publish import publish
from klash_sync.service.site import SitePublisher
from klash_sync.service.timing import Backoff, Debouncer, Periodic
from klash_sync.settings import Settings
from klash_sync.state.store import Store
from klash_sync.web.app import App
from klash_sync.web.server import bind, bound_url, serve, shutdown
from klash_sync.web.tokens import FeedKeys

log = logging.getLogger(__name__)

STOP_GRACE = 7.0  # seconds running syncs get to finish on SIGTERM (the whole stop is < 10 s)


class Daemon:
    """The long-running service. ``start()`` binds and loads; ``serve_forever()`` loops."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 environ: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self.environ = environ
        self.store = Store(settings.state_db)
        self.live = Live()
        self.metrics = Metrics()
        self.embedded = (Embedded(settings.state_dir, prefix=urlsplit(settings.base_url).path)
                         if settings.embedded_caldav else None)
        self.app = App(
            self.live, settings,
            dav=self.embedded.mounted if self.embedded else None,
            health=self._health, metrics=self._metrics, on_request=self.metrics.request,
            keys=FeedKeys.from_settings(settings, self.store),
            changes=lambda: self.store.recent_changes(30),
        )
        # e-mail invitations, own thread; its outbox counts reach the page through Live
        self.invites = InviteWorker(settings, self.clock, self.store,
                                    on_status=self.live.set_invitations)
        self.pool = ThreadPoolExecutor(settings.sync_workers, thread_name_prefix="sync")
        self.inflight: dict[str, Future[None]] = {}
        self.finished: queue.Queue[tuple[Job, CalendarResult]] = queue.Queue()
        self.due = Due(per_host=settings.sync_per_host)
        self._planned: Snapshot | None = None  # the snapshot the current jobs were made from
        self._wake = threading.Event()  # a finished job wakes the loop to start the next at once
        self.backoff = Backoff(self.clock, cap=settings.retry_max)
        self.debouncer = Debouncer(settings.debounce, self.clock)
        self.periodic = Periodic(settings.sync_interval, self.mark_all_due, self.clock)
        self.stopping = threading.Event()
        self.server: Any = None
        self.syncer: Syncer | None = None
        self._server_thread: threading.Thread | None = None
        self._observer: Any = None
        self._last_raw: bytes | None = None
        self._stat: tuple[int, int, int] | None = None
        self._next_stat = 0.0
        self._next_state_check = 0.0
        self._republish = False
        self.operator = Operator(self)  # commands handed over by the CLI (control.py)
        self.site = SitePublisher(settings, self.store, lambda: self.app.keys)  # KLASH_SITE_DIR

    # ---------------------------------------------------------------- start

    def start(self) -> None:
        """Bind the port, load the programme, start serving and watching."""
        self.server, self.settings = bind(self.app, self.settings)
        self.syncer = Syncer(self.settings, self.store, embedded=self.embedded,
                             dav_base=self._loopback_base() + (self.embedded.prefix if self.embedded else ""),
                             environ=self.environ,
                             clock=self.clock.now)
        self._server_thread = threading.Thread(target=serve, args=(self.server,), name="http", daemon=True)
        self._server_thread.start()
        log.info("klash-sync listening on %s (public base %s)", bound_url(self.server),
                 self.settings.base_url)
        log.info("the programme and its subscribe links: %s/", self.settings.base_url)
        if self.embedded is not None:
            log.info("mentors' read-only logins to the embedded calendars: klash-sync accounts")
        # The stat check's baseline is taken before the first read: an edit saved between the
        # read and the watcher's start would otherwise be missed until the next edit.
        self._stat = self._file_stat()
        self.reload(initial=True)
        self._watch()

    def _loopback_base(self) -> str:
        """How the syncer reaches our own /dav/: over loopback, whatever address we bind."""
        host = str(self.server.effective_host)
        if host in ("0.0.0.0", ""):  # noqa: S104
            host = "127.0.0.1"
        elif host in ("::", "::0"):
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.server.effective_port}"

    def _watch(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        target = self.settings.programme.resolve()
        debouncer = self.debouncer

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                paths = {getattr(event, "src_path", None), getattr(event, "dest_path", None)}
                if any(p and Path(str(p)).resolve() == target for p in paths):
                    debouncer.poke()

        try:
            self._observer = Observer()
            self._observer.schedule(Handler(), str(target.parent), recursive=False)
            self._observer.daemon = True
            self._observer.start()
        except OSError as e:  # e.g. inotify limits; the stat check below still sees edits
            log.warning("cannot watch %s (%s); checking it every 2 s instead", target, e)
            self._observer = None

    # --------------------------------------------------------------- reload

    def reload(self, *, initial: bool = False) -> bool:
        """Load the programme file; apply it only if it is valid. Returns True if applied."""
        path = self.settings.programme
        try:
            raw = path.read_bytes()
        except OSError as e:
            return self._reject(f"{path}: the file cannot be read ({e.strerror})", initial)
        if raw == self._last_raw and self.live.programme_error is None:
            return False  # touched but unchanged
        try:
            programme = parse(raw, str(path))
        except ProgrammeError as e:
            if initial and self._last_raw is None:
                self._use_last_good(str(e))
            return self._reject(str(e), initial)
        snapshot = publish(programme, self.store, now=self.clock.now(), base_url=self.settings.event_base_url,
                           previous=self.live.snapshot)
        self._apply(snapshot, raw)
        return True

    def _apply(self, snapshot: Snapshot, raw: bytes) -> None:
        self._last_raw = raw
        self.live.set_snapshot(snapshot)
        self._save_last_good(raw)
        self.metrics.reloads.labels(result="ok").inc()
        self.metrics.valid.set(1)
        self.metrics.sessions.set(len(snapshot.programme.sessions))
        self.metrics.loaded.set(snapshot.loaded_at.timestamp())
        log.info("programme loaded: %d sessions, %d mentors%s", len(snapshot.programme.sessions),
                 len(snapshot.programme.mentors), _what_happened(snapshot.happened))
        self.mark_changed_due()
        self.invites.changed()

    def _reject(self, message: str, initial: bool) -> bool:
        self.live.set_error(message, self.clock.now())
        self.metrics.reloads.labels(result="invalid").inc()
        self.metrics.valid.set(0)
        still = "nothing is served until it is fixed" if self.live.snapshot is None else \
            f"still using the programme loaded at {self.live.snapshot.loaded_at:%Y-%m-%d %H:%M:%S} UTC"
        log.error("programme not applied (%s):\n%s", still, message)
        return False

    @property
    def _last_good_path(self) -> Path:
        return self.settings.state_dir / "programme.last-good.toml"

    def _save_last_good(self, raw: bytes) -> None:
        tmp = self._last_good_path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_bytes(raw)
            tmp.replace(self._last_good_path)

    def _use_last_good(self, error: str) -> None:
        """At start with a broken file, serve the last programme that was valid."""
        try:
            raw = self._last_good_path.read_bytes()
            programme = parse(raw, str(self._last_good_path))
        except (OSError, ProgrammeError):
            return
        log.warning("starting with the last good programme from %s", self._last_good_path)
        snapshot = publish(programme, self.store, now=self.clock.now(), base_url=self.settings.event_base_url)
        self._apply(snapshot, raw)
        self.live.set_error(error, self.clock.now())
        self._last_raw = None

    # ----------------------------------------------------------------- sync

    @property
    def jobs(self) -> dict[str, Job]:
        return self.due.jobs

    @property
    def pending(self) -> set[str]:
        return self.due.pending

    def mark_all_due(self) -> None:
        """The periodic pass: every calendar should be synced as soon as it is not backing off."""
        self._refresh(all_due=True)

    def mark_changed_due(self) -> None:
        """After a reload: only the calendars whose desired content changed, ahead of the rest."""
        self._refresh(all_due=False)

    def _refresh(self, *, all_due: bool) -> None:
        snapshot = self.live.snapshot
        if snapshot is None:
            return
        first = self._planned is None
        if self._planned is not None and self._planned is not snapshot:
            carry_cache(self._planned, snapshot)  # an edit's cost grows with the edit, not the programme
        self._planned = snapshot
        changed = self.due.refresh(jobs_for(snapshot, self.settings, self.store), all_due=all_due)
        if changed and not all_due:
            if first:
                log.info("checking %d calendars against the programme", len(changed))
            else:
                log.info("%d calendars changed; syncing them first", len(changed))
        self.live.forget(set(self.due.jobs))

    def _dispatch(self) -> None:
        snapshot = self.live.snapshot
        if snapshot is None or self.syncer is None or self.stopping.is_set():
            return
        domain = snapshot.programme.programme.uid_domain
        free = self.settings.sync_workers - len(self.inflight)
        for key in self.due.take(self.inflight, free, self.backoff.ready):
            override = self.operator.override(key)
            job, allow = override or (self.jobs[key], False)
            self.inflight[key] = self.pool.submit(self._run_job, job, domain, allow)

    def _run_job(self, job: Job, domain: str, allow_mass_delete: bool = False) -> None:
        assert self.syncer is not None
        try:
            result = self.syncer.sync_one(job, domain, allow_mass_delete=allow_mass_delete)
            self.finished.put((job, result))
        finally:
            self._wake.set()

    def _collect(self) -> None:
        while True:
            try:
                job, result = self.finished.get_nowait()
            except queue.Empty:
                return
            self.inflight.pop(job.key, None)
            self._record(job, result)

    def _record(self, job: Job, result: CalendarResult) -> None:
        now = self.clock.now()
        self.operator.finished(job, result)
        if result.raised:
            self._republish = True
        self.metrics.duration.observe(result.seconds)
        for kind, count in (("create", result.created), ("update", result.updated),
                            ("delete", result.deleted)):
            if count:
                self.metrics.actions.labels(kind=kind).inc(count)
        if result.ok:
            self.metrics.syncs.labels(result="ok").inc()
            self.backoff.succeeded(job.key)
            if job.leaving and self.jobs.get(job.key, job).leaving:  # not a purged current one
                self.jobs.pop(job.key, None)
            status = CalendarStatus(job.key, job.mentor, True, now, now, None, None,
                                    result.created, result.updated, result.deleted)
            if result.changed:
                log.info("calendar of %s: %d created, %d updated, %d deleted", job.mentor,
                         result.created, result.updated, result.deleted)
        else:
            self.metrics.syncs.labels(result="failed").inc()
            self.metrics.failures.labels(mentor=job.mentor).inc()
            delay = self.backoff.failed(job.key)
            self.pending.add(job.key)
            status = CalendarStatus(job.key, job.mentor, False, now, None, now, result.error)
            log.warning("calendar of %s failed (%s); retrying in %.0f s", job.mentor,
                        result.error, delay)
        if not job.leaving or not result.ok:
            self.live.record(status)
        self.metrics.failing.set(sum(1 for c in self.live.calendars.values() if not c.ok))

    # ----------------------------------------------------------------- loop

    def tick(self) -> None:
        """One turn of the main loop; everything time-driven happens here."""
        if not self._check_state():
            return
        self.periodic.run_pending()
        self._check_file()
        if self.debouncer.due():
            self.reload()
        self._collect()
        if self._republish:
            self._republish = False
            self.republish()
        self.operator.tick()
        self._dispatch()
        self.invites.tick(self.live.snapshot)
        self.site.tick(self.live.snapshot)

    def republish(self) -> None:
        """Publish the current programme again: the store's SEQUENCEs were raised by a sync."""
        snapshot = self.live.snapshot
        if snapshot is None:
            return
        fresh = publish(snapshot.programme, self.store, now=self.clock.now(),
                        base_url=self.settings.event_base_url, previous=snapshot)
        self.live.set_snapshot(fresh, from_file=False)  # a broken file on disk is still reported
        log.info("republished the programme with SEQUENCEs raised above the servers' copies")
        self.mark_changed_due()

    def _check_state(self) -> bool:
        """Every 5 s: is the state database still the file we opened? Stop writing if not."""
        now = self.clock.monotonic()
        if now < self._next_state_check:
            return self.store.broken is None
        self._next_state_check = now + 5.0
        was = self.store.broken
        problem = self.store.check()
        if problem is not None and was is None:
            log.error("%s", problem)
            self.live.set_state_error(problem)
        return problem is None

    def _check_file(self) -> None:
        """A stat every 2 s, for file systems where change events do not arrive."""
        now = self.clock.monotonic()
        if now < self._next_stat:
            return
        self._next_stat = now + 2.0
        current = self._file_stat()
        if self._stat is not None and current != self._stat and not self.debouncer.pending:
            self.debouncer.poke()
        self._stat = current

    def _file_stat(self) -> tuple[int, int, int]:
        try:
            st = self.settings.programme.stat()
        except OSError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def idle(self) -> bool:
        """Nothing running and nothing due now (for tests that step the clock)."""
        self._collect()
        return (not self.inflight and not self.due.waiting(self.inflight, self.backoff.ready)
                and self.invites.idle())

    def serve_forever(self) -> None:
        """Run until SIGTERM/SIGINT; SIGHUP reloads the programme."""
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: self.debouncer.trigger())
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception:  # guard the loop: one bad turn must not end the service
                log.exception("error in the main loop; continuing")
            self._wake.wait(0.1)
            self._wake.clear()
        self.stop()

    def stop(self) -> None:
        """Finish running syncs (bounded), close the server and the store."""
        self.stopping.set()
        log.info("stopping: waiting for %d running calendar syncs", len(self.inflight))
        self.operator.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.invites.stop()
        self.site.stop()
        done = threading.Event()

        def wait_all() -> None:
            for future in list(self.inflight.values()):
                with contextlib.suppress(Exception):
                    future.result()
            done.set()

        threading.Thread(target=wait_all, daemon=True).start()
        done.wait(STOP_GRACE)
        if self._observer is not None:
            self._observer.stop()
        if self.syncer is not None and done.is_set():
            self.syncer.close()  # the kept-alive connections to the CalDAV servers
        if self.server is not None:
            shutdown(self.server, self._server_thread, timeout=2)
        self.store.close()
        log.info("stopped")

    def _metrics(self) -> bytes:
        self.metrics.set_invitations(self.invites.status())
        return self.metrics.render()

    def _health(self) -> tuple[int, bytes]:
        now = self.clock.now()
        invites = self.invites.status()
        self.metrics.set_invitations(invites)
        self.live.set_invitations(invites)  # e.g. sent meanwhile by `klash-sync invites --send`
        return health(self.live, now=now, unhealthy_after=self.settings.unhealthy_after,
                      programme_path=str(self.settings.programme), invites=invites,
                      invite_problems=self.invites.problems(self.live.snapshot, now,
                                                            self.settings.unhealthy_after))


def _what_happened(happened: dict[str, str]) -> str:
    """'; vantaa changed, joensuu added' — or counts, when a whole programme arrives at once."""
    if not happened:
        return ""
    if len(happened) <= 10:
        return "; " + ", ".join(f"{sid} {what}" for sid, what in sorted(happened.items()))
    counts: dict[str, int] = {}
    for what in happened.values():
        counts[what] = counts.get(what, 0) + 1
    return "; " + ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))


def run(settings: Settings) -> int:
    daemon = Daemon(settings)
    daemon.start()
    daemon.serve_forever()
    return 0

