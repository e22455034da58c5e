"""The daemon's side of operator requests: take them, check them, carry them out, answer.

A command that writes hands its action to the running daemon through ``control.py``.
Once a second the main loop takes the waiting requests and checks each: a request
older than five minutes, or one made for a programme file the daemon has not applied,
is refused with an answer saying so (a programme saved a moment ago is waited for,
for the debounce and a few seconds, before that). The rest run one at a time on the
operator's own thread, through the same function the command would have run itself
(``actions.py``), in a ``DaemonContext``: calendar syncs go through the daemon's own
worker pool (so a purge never races the daemon's sync of the same calendar),
invitations through its invitation worker, and what the main loop owns (the job list)
is read in the main loop.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import queue
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_any
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from klash_sync.deliver.caldav.sync import CalendarResult, Job
from klash_sync.deliver.invite.channel import InviteReport
from klash_sync.deliver.invite.outbox import Outbox
from klash_sync.deliver.invite.smtp import SmtpConfig
from klash_sync.embedded.mount import Embedded
from klash_sync.errors import SettingsError
from klash_sync.programme.model import Programme
from klash_sync.render.snapshot import Snapshot
from klash_sync.service import control
from klash_sync.service.actions import ACTIONS, EXIT_FAILED, EXIT_INVALID, Outcome, perform
from klash_sync.web.tokens import FeedKeys

if TYPE_CHECKING:
    from klash_sync.service.daemon import Daemon

log = logging.getLogger(__name__)

T = TypeVar("T")
STOPPED = "the daemon stopped before this calendar was synced; run the command again"


class Stopped(Exception):
    """The daemon is stopping: the action cannot finish."""


class Operator:
    """Owned by the daemon: ``tick`` in its loop, ``override`` when it dispatches a job,
    ``finished`` when a job's result comes in, ``stop`` when it stops."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="operator")
        self._calls: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self._next = 0.0
        self._next_sweep = 0.0
        self._deferred: list[tuple[control.Request, float]] = []
        # request id -> the request and its run on the operator thread
        self._queued: dict[str, tuple[control.Request, Future[None]]] = {}
        self._scheduled: dict[str, tuple[Job, bool, Future[CalendarResult]]] = {}
        self._running: dict[str, tuple[Job, Future[CalendarResult]]] = {}
        self._stopping = False

    # ------------------------------------------------------------ main loop

    def tick(self) -> None:
        self._run_calls()
        for key in [k for k in self._scheduled if k not in self.daemon.jobs]:
            job, _, future = self._scheduled.pop(key)
            future.set_result(_failed(job, "no longer a calendar of the programme"))
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + 1.0
        state_dir = self.daemon.settings.state_dir
        deferred, self._deferred = self._deferred, []
        for request in control.take(state_dir):
            self._consider(request, None)
        for request, until in deferred:
            self._consider(request, until)
        if now >= self._next_sweep:
            self._next_sweep = now + 60.0
            control.sweep(state_dir)

    def override(self, key: str) -> tuple[Job, bool] | None:
        """The job (and whether it may delete most of a calendar) a request wants run for
        ``key`` instead of the daemon's own, when the daemon starts that calendar's sync."""
        entry = self._scheduled.pop(key, None)
        if entry is None:
            return None
        job, allow, future = entry
        self._running[key] = (job, future)
        return job, allow

    def finished(self, job: Job, result: CalendarResult) -> None:
        entry = self._running.get(job.key)
        if entry is not None and entry[0] is job:
            del self._running[job.key]
            entry[1].set_result(result)

    def stop(self) -> None:
        """Answer everything still open: whatever did not finish is reported as such."""
        self._stopping = True
        for job, _, future in self._scheduled.values():
            future.set_result(_failed(job, STOPPED))
        for job, result in self._running.values():
            if not result.done():
                result.set_result(_failed(job, STOPPED))
        self._scheduled.clear()
        self._running.clear()
        self._run_calls()
        for request, _ in self._deferred:
            self._answer(request, _stopped())
        running: list[Future[None]] = []
        for request, run in list(self._queued.values()):
            if run.cancel():
                self._answer(request, _stopped())
            else:
                running.append(run)
        self._pool.shutdown(wait=False)
        deadline = time.monotonic() + 2.0
        for run in running:  # let it answer; past this, the command sees the daemon gone
            with contextlib.suppress(Exception):
                run.result(timeout=max(0.0, deadline - time.monotonic()))

    def _run_calls(self) -> None:
        while True:
            try:
                call, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if self._stopping:
                future.set_exception(Stopped())
                continue
            try:
                future.set_result(call())
            except Exception as e:  # handed to the operator thread, which reports it
                future.set_exception(e)

    # ------------------------------------------------------------- requests

    def _consider(self, request: control.Request, until: float | None) -> None:
        daemon = self.daemon
        if request.action not in ACTIONS:
            self._answer(request, _refused("the running daemon cannot read this request (is "
                                           "it the same version of klash-sync?)"))
            return
        try:
            inspect.signature(ACTIONS[request.action][1]).bind(None, None, **request.args)
        except TypeError:
            self._answer(request, _refused("the running daemon cannot read this request (is "
                                           "it the same version of klash-sync?)"))
            return
        age = time.time() - request.made_at if request.made_at is not None else None
        if age is None or age > control.MAX_AGE or age < -60:
            self._answer(request, _refused(
                f"the request was made {age or 0:.0f} s ago, more than {control.MAX_AGE / 60:.0f} "
                "minutes, and was not carried out; run the command again"))
            return
        raw = daemon._last_raw
        if raw is None or control.digest(raw) != request.programme or daemon.live.snapshot is None:
            until = until or time.monotonic() + daemon.settings.debounce + 5.0
            if time.monotonic() < until:  # an edit saved a moment ago: the reload is coming
                self._deferred.append((request, until))
                return
            snapshot = daemon.live.snapshot
            used = (f"it uses {daemon.settings.programme} as loaded at "
                    f"{snapshot.loaded_at:%Y-%m-%d %H:%M:%S} UTC" if snapshot is not None
                    else "it has no valid programme")
            self._answer(request, _refused(
                f"the running daemon has not applied the programme file this command read ({used}); "
                "nothing was done. If the file was just saved, run the command again once the "
                "daemon has applied it (/healthz says why it has not)"))
            return
        snapshot = daemon.live.snapshot
        log.info("carrying out `%s` handed over by the command line", _describe(request))
        self._queued[request.id] = (request, self._pool.submit(self._run, request, snapshot))

    def _run(self, request: control.Request, snapshot: Snapshot) -> None:
        out = Outcome()
        try:
            perform(request.action, request.args, DaemonContext(self, snapshot), out)
        except Stopped:
            out.err("klash-sync: the daemon stopped before it finished; run the command again")
            out.code = EXIT_FAILED
        except Exception as e:
            log.exception("`%s` handed over by the command line failed", _describe(request))
            out.err(f"klash-sync: the running daemon could not carry it out (internal error: "
                    f"{type(e).__name__}); see its log")
            out.code = EXIT_FAILED
        self._answer(request, out)
        self._queued.pop(request.id, None)

    def _answer(self, request: control.Request, out: Outcome) -> None:
        try:
            control.answer(self.daemon.settings.state_dir, request.id, out.code, out.lines)
        except OSError as e:
            log.error("cannot answer the command line's request %s: %s", request.id, e)

    # ------------------------------------------------- for the operator thread

    def call(self, work: Callable[[], T]) -> T:
        """Run ``work`` in the main loop (which owns the job list) and return its result."""
        future: Future[T] = Future()
        self._calls.put((work, future))
        self.daemon._wake.set()
        return self.wait(future)

    def wait(self, future: Future[T]) -> T:
        while True:
            if self._stopping and not future.done():
                raise Stopped()
            try:
                return future.result(timeout=0.5)
            except TimeoutError:
                continue
            except CancelledError:
                raise Stopped() from None

    def sync(self, jobs: list[Job] | None, allow_mass_delete: bool,
             on_result: Callable[[CalendarResult], None]) -> list[CalendarResult]:
        """Have the daemon's workers sync these calendars now (None: all), as soon as each is
        not running already; the results as they come in."""
        def schedule() -> list[Future[CalendarResult]]:
            daemon = self.daemon
            futures: list[Future[CalendarResult]] = []
            for job in list(daemon.jobs.values()) if jobs is None else jobs:
                future: Future[CalendarResult] = Future()
                futures.append(future)
                if job.key not in daemon.jobs:
                    future.set_result(_failed(job, "no longer a calendar of the programme"))
                    continue
                self._scheduled[job.key] = (job, allow_mass_delete, future)
                daemon.pending.add(job.key)
                daemon.backoff.succeeded(job.key)  # now, not after a failing calendar's pause
            return futures

        waiting: set[Future[CalendarResult]] = set(self.call(schedule))
        results = []
        while waiting:
            done, waiting = wait_any(waiting, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                on_result(result)
                results.append(result)
        return results


class DaemonContext:
    """``actions.Context`` inside the running daemon, for one request."""

    def __init__(self, operator: Operator, snapshot: Snapshot) -> None:
        self.operator = operator
        self.daemon = operator.daemon
        self.settings = self.daemon.settings
        self.store = self.daemon.store
        self._snapshot = snapshot

    @property
    def programme(self) -> Programme:
        return self._snapshot.programme

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def now(self) -> datetime:
        return self.daemon.clock.now()

    def keys(self) -> FeedKeys | None:
        return self.daemon.app.keys

    def embedded(self) -> Embedded | None:
        return self.daemon.embedded

    def jobs(self) -> list[Job]:
        return self.operator.call(lambda: list(self.daemon.jobs.values()))

    def sync(self, jobs: list[Job] | None, *, allow_mass_delete: bool,
             on_result: Callable[[CalendarResult], None]) -> list[CalendarResult]:
        return self.operator.sync(jobs, allow_mass_delete, on_result)

    def smtp_config(self) -> SmtpConfig | None:
        worker = self.daemon.invites
        if worker.config is None and worker.config_error is not None:
            raise SettingsError(worker.config_error)
        return worker.config

    def invitations(self, work: Callable[[Outbox], InviteReport]) -> InviteReport:
        return self.operator.wait(self.daemon.invites.send_now(work))

    def published(self) -> None:
        self.daemon.site.changed()


def _failed(job: Job, error: str) -> CalendarResult:
    return CalendarResult(job.key, job.mentor, ok=False, error=error, leaving=job.leaving)


def _stopped() -> Outcome:
    out = Outcome(code=EXIT_FAILED)
    out.err("klash-sync: the daemon stopped before it carried it out; nothing was done, run "
            "the command again")
    return out


def _refused(message: str) -> Outcome:
    out = Outcome()
    out.err(f"klash-sync: {message}")
    out.code = EXIT_INVALID
    return out


def _describe(request: control.Request) -> str:
    command = {"invites-send": "invites --send", "feeds-rotate": "feeds rotate",
               "export-all": "export --all"}.get(request.action, request.action)
    shown = {k: v for k, v in request.args.items() if k != "table"}
    return f"klash-sync {command}" + "".join(f" {k}={v}" for k, v in sorted(shown.items()))
