"""``klash-sync run``: serve the feeds and the embedded CalDAV server, and deliver the programme.

One process, three kinds of thread:

* the main loop (``tick`` every 0.1 s, or at once when a delivery ends), which reads
  in one screen below;
* each channel's workers (``scheduler.py``), one unit each, so a slow or failing
  server occupies one worker and never delays the feeds or the other recipients;
* waitress's threads, serving whatever snapshot is current (``status.Live``).

The rooms: ``watch.py`` notices edits, ``reload.py`` loads and keeps the last good
programme, ``scheduler.py`` delivers through the channels listed in ``channels()``,
``statewatch.py`` asks whether the state store can be written (while it cannot, nothing
new that writes starts and an edit waits), ``health.py`` and ``metrics.py`` report,
``operator.py`` carries out the operator
commands handed over through ``control.py``, ``site.py`` keeps ``KLASH_SITE_DIR``.
SIGHUP reloads at once; SIGTERM and SIGINT stop within KLASH_STOP_TIMEOUT (10 s).

Stopping. The CLI catches the signals before it takes the state directory's lock
(``cli.commands.cmd_run``), so ``run`` is handed events, not signals: a SIGTERM that
comes while the daemon starts ends the start early and stops cleanly, a SIGHUP is
remembered and reloads once the loop runs. From the signal, the stop has a deadline
(``stopping.py``): running deliveries get 60 % of KLASH_STOP_TIMEOUT to finish, the HTTP
server a second or two; a delivery still waiting on a server after that is abandoned:
the store is left as it is (SQLite keeps what was committed), and ``run`` exits with 0 at
once, without waiting for the thread, so the kernel releases the lock as the process
goes. The next start repeats what was abandoned, as after a kill -9: an invitation is
marked sent only after the server's 250 for its DATA, and every calendar is compared
with the programme again. A watch on the deadline exits even if the stop itself hangs.
"""

from __future__ import annotations

import gc
import logging
import threading
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit

from klash_sync.clock import Clock
from klash_sync.deliver.base import Channel
from klash_sync.deliver.caldav.channel import Calendars
from klash_sync.deliver.caldav.sync import Syncer
from klash_sync.deliver.invite.channel import Invitations
from klash_sync.deliver.invite.inbox import Replies
from klash_sync.embedded.mount import Embedded
from klash_sync.render.attendance import attendance
from klash_sync.render.snapshot import Snapshot
from klash_sync.service.health import health, judge
from klash_sync.service.metrics import Metrics
from klash_sync.service.notify import notify
from klash_sync.service.operator import Operator
from klash_sync.service.reload import Loader
from klash_sync.service.scheduler import Scheduler
from klash_sync.service.site import SitePublisher
from klash_sync.service.statewatch import StateWatch
from klash_sync.service.stopping import Budget, leave, still_waiting, watch
from klash_sync.service.timing import Debouncer, Periodic
from klash_sync.service.watch import Watcher
from klash_sync.settings import Settings
from klash_sync.state.backoff import Backoff
from klash_sync.state.records import Answer
from klash_sync.state.store import Store
from klash_sync.status import Live
from klash_sync.web.app import App
from klash_sync.web.server import bind, bound_url, serve, shutdown
from klash_sync.web.tokens import FeedKeys, answer_links

log = logging.getLogger(__name__)

# How long one write waits for another program holding the state database (a backup tool):
# short, since it holds the store's lock meanwhile; the write is tried again (statewatch.py).
STATE_WAIT = 1.0
DELIVERIES_SHARE = 0.6  # of KLASH_STOP_TIMEOUT: how long running deliveries get to finish


def channels(settings: Settings, clock: Clock, store: Store) -> list[Channel]:
    """Every delivery channel the service runs: a new channel is one more line here."""
    return [Calendars(settings, store), Invitations(settings, clock, store),
            Replies(settings, clock, store)]


class Daemon:
    """The long-running service. ``start()`` binds and loads; ``serve_forever()`` loops."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 environ: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self.environ = environ
        self.store = Store(settings.state_db, busy_timeout=STATE_WAIT)
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
            record=self.record_answer, answers=self.store.all_answers, now=self.clock.now,
        )
        self._attended: Snapshot | None = None  # the programme the shown answers were counted for
        self.channels = channels(settings, self.clock, self.store)
        # The channels operator requests name (control.py) and the syncer is given to.
        self.calendars = next(c for c in self.channels if isinstance(c, Calendars))
        self.invitations = next(c for c in self.channels if isinstance(c, Invitations))
        self.invitations.answer_link = answer_links(settings, self.app.keys)
        self.replies = next(c for c in self.channels if isinstance(c, Replies))
        # One backoff formula for every channel, kept in the store: a restart does not
        # hammer a server that was failing a minute ago.
        self.scheduler = Scheduler(self.channels, self.live, self.metrics, self.clock,
                                   retry_max=settings.retry_max,
                                   backoff=lambda name: Backoff(self.clock, self.store, channel=name,
                                                                cap=settings.retry_max))
        self.debouncer = Debouncer(settings.debounce, self.clock)
        self.watcher = Watcher(settings.programme, self.debouncer, self.clock)
        self.loader = Loader(settings, self.store, self.live, self.metrics, self.clock,
                             applied=lambda s: self.scheduler.refresh(s, all_due=False))
        self.periodic = Periodic(settings.sync_interval,
                                 lambda: self.scheduler.refresh(self.live.snapshot, all_due=True),
                                 self.clock)
        self.state = StateWatch(self.store, self.live, self.clock)
        self.stopping = threading.Event()
        self.server: Any = None
        self._server_thread: threading.Thread | None = None
        self.operator = Operator(self)  # commands handed over by the CLI (control.py)
        self.site = SitePublisher(settings, self.store, lambda: self.app.keys)  # KLASH_SITE_DIR

    # ----------------------------------------------------------------- loop

    def tick(self) -> None:
        """One turn of the main loop; everything time-driven happens here."""
        writable = self.state.check()  # else nothing new that writes starts (statewatch.py)
        self.watcher.check()
        if self.debouncer.due() or (writable and self.loader.retry_due()):
            self.reload()
        if self.scheduler.collect() or self.live.snapshot is not self._attended:
            self.refresh_attendance()  # a pass may have read answers; a new programme counts anew
        self.operator.tick()
        self.site.tick(self.live.snapshot)
        if not writable:
            return
        self.periodic.run_pending()
        if self.scheduler.republish:
            self.scheduler.republish = not self.loader.republish()
        self.scheduler.tick(self.live.snapshot)

    def record_answer(self, answer: Answer) -> None:
        """An answer given on the page (a web request's thread): kept, then shown at once."""
        self.store.record_answers([answer], self.clock.now())
        self.refresh_attendance()

    def refresh_attendance(self) -> None:
        """Who is coming, read from the store into ``Live`` for the pages and /metrics (which
        never read the store themselves). A store that cannot be read keeps the last counts."""
        snapshot = self.live.snapshot
        if snapshot is None:
            return
        self._attended = snapshot  # tried once per programme and pass, not at every turn
        try:
            latest = self.store.latest_answers()
        except Exception as e:  # sqlite3 errors while another program holds the file
            log.warning("answers could not be read from the state store: %s", e)
            return
        self.live.set_attendance(attendance(snapshot.programme, snapshot.revisions, latest))

    def reload(self, *, initial: bool = False) -> bool:
        """Load the programme file; apply it only if it is valid. Returns True if applied."""
        return self.loader.reload(initial=initial)

    def idle(self) -> bool:
        """Nothing running and nothing due now (for tests that step the clock)."""
        return self.scheduler.idle() and self.site.idle()

    @property
    def backoff(self) -> Backoff:
        """The calendars' backoff (per calendar key)."""
        return self.scheduler.lane(Calendars.name).backoff

    @property
    def inflight(self) -> dict[tuple[str, str], Future[None]]:
        return self.scheduler.inflight

    # ------------------------------------------------------- start and stop

    def start(self) -> None:
        """Bind the port, load the programme, start serving and watching; a stop asked for
        meanwhile (SIGTERM during the first load) ends it early, for ``stop`` to finish."""
        if self.stopping.is_set():
            return
        self.server, self.settings = bind(self.app, self.settings)
        self.calendars.syncer = Syncer(
            self.settings, self.store, embedded=self.embedded,
            dav_base=self._loopback_base() + (self.embedded.prefix if self.embedded else ""),
            environ=self.environ, clock=self.clock.now)
        self._server_thread = threading.Thread(target=serve, args=(self.server,), name="http", daemon=True)
        self._server_thread.start()
        log.info("klash-sync listening on %s (public base %s)", bound_url(self.server),
                 self.settings.base_url)
        log.info("the programme and its subscribe links: %s/", self.settings.base_url)
        if self.embedded is not None:
            log.info("mentors' read-only logins to the embedded calendars: klash-sync accounts")
        self.watcher.baseline()
        self.reload(initial=True)
        if not self.stopping.is_set():
            self.watcher.start()

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

    def serve_forever(self, reload: threading.Event | None = None) -> None:
        """Run until ``stopping`` is set (SIGTERM/SIGINT); ``reload`` set (SIGHUP) reloads
        the programme at once. The signals are caught by the caller (``run``'s)."""
        while not self.stopping.is_set():
            if reload is not None and reload.is_set():
                reload.clear()
                self.debouncer.trigger()
            try:
                self.tick()
            except Exception:  # guard the loop: one bad turn must not end the service
                log.exception("error in the main loop; continuing")
            self.scheduler.wake.wait(0.1)
            self.scheduler.wake.clear()
        self.stop()

    def stop(self) -> None:
        """Within KLASH_STOP_TIMEOUT: let running deliveries finish (or abandon them), close
        the server, and the store unless a delivery still holds it."""
        self.stopping.set()
        notify("STOPPING=1")
        budget = self.stop_budget = Budget(self.settings.stop_timeout)
        self.operator.stop()
        finished = self.scheduler.stop(budget.until(DELIVERIES_SHARE))
        self.site.stop()
        self.watcher.stop()
        if self.server is not None:
            shutdown(self.server, self._server_thread, timeout=min(1.0, budget.left() / 2))
        if finished:  # else a delivery that was abandoned still holds the store: leave it open
            self.store.close()
        log.info("stopped")

    # ------------------------------------------------------------- reports

    # /healthz and /metrics read only ``Live``, never the store: the scheduler refreshes a
    # channel's records after each of its runs (and the operator after each hand-over, the
    # only other way anything writes while ``run`` holds the state directory). So they
    # answer at once even while another program holds the database and writes wait on it.

    def _metrics(self) -> bytes:
        problems, _ = judge(self.live, now=self.clock.now(), unhealthy_after=self.settings.unhealthy_after)
        return self.metrics.render(self.live, problems)

    def _health(self) -> tuple[int, bytes]:
        return health(self.live, now=self.clock.now(), unhealthy_after=self.settings.unhealthy_after,
                      programme_path=str(self.settings.programme))


def run(settings: Settings, *, stop: threading.Event | None = None,
        reload: threading.Event | None = None) -> int:
    """The service, until ``stop`` is set; ``reload`` set reloads the programme. The caller
    sets both from signal handlers installed before it took the lock (cli ``cmd_run``).
    Exits the process itself, with 0, when work abandoned by the stop still holds a thread."""
    stop = stop if stop is not None else threading.Event()
    watch(stop, settings.stop_timeout)  # the bound, even if the stop itself hangs
    daemon = Daemon(settings)
    daemon.stopping = stop
    daemon.start()
    # Everything made so far (modules, Radicale, the first snapshot) lives as long as the
    # process: out of the collector's sight, a full collection walks only what requests
    # make, and no longer pauses every thread (a /healthz among them) for tens of ms.
    gc.freeze()
    if not stop.is_set():
        notify("READY=1")  # systemd sends SIGHUP (reload) only from now on
    daemon.serve_forever(reload)
    if still_waiting(daemon.stop_budget):
        leave()  # a thread waits on a server that does not answer: do not wait for it
    return 0
