"""The daemon's side of operator requests: take them, check them, carry them out, answer.

A command that writes hands its action to the running daemon through ``control.py``.
Once a second the main loop takes the waiting requests and checks each: a request
older than KLASH_REQUEST_MAX_AGE (five minutes), or one made for a programme file the daemon has not applied,
is refused with an answer saying so (a programme saved a moment ago is waited for,
for the debounce and a few seconds, before that). The rest run one at a time on the
operator's own thread, through the same function the command would have run itself
(``actions.py``), in a ``DaemonContext``: calendar syncs go through the daemon's own
worker pool, asked through the scheduler like any unit (so a purge never races the
daemon's sync of the same calendar), an invitation pass on the invitation channel's
own worker (so it never overlaps a scheduled one), and what the main loop owns (the
job list) is read in the main loop.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import queue
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from klash_sync.deliver.base import Ask
from klash_sync.deliver.base import Outcome as Ran
from klash_sync.deliver.caldav.channel import Calendars
from klash_sync.deliver.caldav.sync import CalendarResult, Job
from klash_sync.deliver.invite.channel import Invitations, InviteReport
from klash_sync.deliver.invite.inbox import Replies
from klash_sync.deliver.invite.outbox import Outbox
from klash_sync.deliver.invite.replies import ReadReport
from klash_sync.render.snapshot import Snapshot
from klash_sync.service import control
from klash_sync.service.actions import ACTIONS, EXIT_FAILED, EXIT_INVALID, Outcome, perform
from klash_sync.service.inside import DaemonContext

if TYPE_CHECKING:
    from klash_sync.service.daemon import Daemon

log = logging.getLogger(__name__)

T = TypeVar("T")
STOPPED = "the daemon stopped before this calendar was synced; run the command again"


class Stopped(Exception):
    """The daemon is stopping: the action cannot finish."""


class Operator:
    """Owned by the daemon: ``tick`` in its loop, ``stop`` when it stops."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="operator")
        self._calls: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self._next = 0.0
        self._next_sweep = 0.0
        self._deferred: list[tuple[control.Request, float]] = []
        # request id -> the request and its run on the operator thread
        self._queued: dict[str, tuple[control.Request, Future[None]]] = {}
        self._stopping = False
        self._refused: str | None = None  # why the requests folder is refused, once logged
        with contextlib.suppress(OSError):  # made by the daemon, so that it is its user's
            control.prepare(daemon.settings.state_dir)

    # ------------------------------------------------------------ main loop

    def tick(self) -> None:
        self._run_calls()
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + 1.0
        state_dir = self.daemon.settings.state_dir
        deferred, self._deferred = self._deferred, []
        taken = control.take(state_dir)
        if taken.refused != self._refused and taken.refused is not None:
            log.error("%s", taken.refused)
        self._refused = taken.refused
        for skipped in taken.skipped:  # each file once: it is removed (or answered)
            log.warning("skipped a file in the requests folder, %s", skipped)
        for request in taken.requests:
            self._consider(request, None)
        for request, until in deferred:
            self._consider(request, until)
        if now >= self._next_sweep:
            self._next_sweep = now + 60.0
            control.sweep(state_dir, older_than=2 * self.daemon.settings.request_max_age)

    def stop(self) -> None:
        """Answer everything still open: whatever did not finish is reported as such."""
        self._stopping = True  # an action waiting for a sync or a pass sees it and stops
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
        max_age = daemon.settings.request_max_age
        if age is None or age > max_age or age < -60:
            self._answer(request, _refused(
                f"the request was made {age or 0:.0f} s ago, more than the {max_age:.0f} s "
                "KLASH_REQUEST_MAX_AGE allows, and was not carried out; run the command again"))
            return
        raw = daemon.loader.last_raw
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
        self.daemon.scheduler.wake.set()
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
        """Have the daemon's workers sync these calendars now (None: all), through the
        scheduler as soon as each is not running already; the results as they come in."""
        arrived: queue.Queue[CalendarResult] = queue.Queue()

        def done(key: str, ran: Ran) -> None:
            result = ran.result
            if not isinstance(result, CalendarResult):  # not run: no such calendar any more
                job = asked.get(key)
                result = CalendarResult(key, job.mentor if job else key, ok=False, error=ran.error,
                                        leaving=bool(job and job.leaving))
            arrived.put(result)

        asked: dict[str, Job | None] = {}

        def schedule() -> int:
            lane = self.daemon.scheduler.lane(Calendars.name)
            asked.update(dict(lane.due.jobs) if jobs is None else {j.key: j for j in jobs})
            items = dict.fromkeys(asked) if jobs is None else dict(asked)  # None: the unit's own
            self.daemon.scheduler.ask(Calendars.name, items, Ask(allow_mass_delete, done))
            return len(asked)

        results: list[CalendarResult] = []
        expected = self.call(schedule)
        while len(results) < expected:
            if self._stopping:  # each calendar not synced yet is reported as such
                seen = {r.key for r in results}
                for key, job in asked.items():
                    if key not in seen:
                        result = CalendarResult(key, job.mentor if job else key, ok=False,
                                                error=STOPPED, leaving=bool(job and job.leaving))
                        on_result(result)
                        results.append(result)
                break
            try:
                result = arrived.get(timeout=0.5)
            except queue.Empty:
                continue
            on_result(result)
            results.append(result)
        return results

    def invitations(self, work: Callable[[Outbox], InviteReport]) -> InviteReport:
        """Run an operator's invitation pass on the invitation channel's own worker, then
        show the outbox's new state."""
        scheduler = self.daemon.scheduler
        channel = self.daemon.invitations
        report = self.wait(scheduler.lane(Invitations.name).pool.submit(work, channel.outbox))
        self.call(lambda: scheduler.report(Invitations.name, self.daemon.live.snapshot))
        return report

    def replies(self, snapshot: Snapshot) -> ReadReport:
        """Read the mailbox on the replies channel's own worker (never beside its own read)."""
        channel = self.daemon.replies
        return self.wait(self.daemon.scheduler.lane(Replies.name).pool.submit(channel.read_once,
                                                                                snapshot))



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
