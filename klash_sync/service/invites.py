"""The daemon's side of invitations: wait until the programme is quiet, then send in a worker.

The daemon calls ``changed()`` when it applies a new programme and ``tick()`` on every
turn of its loop. A pass starts only when the programme has been quiet for
``KLASH_INVITE_DELAY`` seconds (so an organiser's three quick edits make one message)
or when a message that met a temporary refusal is due again. It runs on a thread of
its own, never in the sync pool or the main loop, so a slow SMTP server delays
neither the feeds nor a CalDAV sync. Time comes from the daemon's clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from klash_sync.clock import Clock
from klash_sync.deliver.invite.channel import InviteReport, send
from klash_sync.deliver.invite.outbox import MentorOutbox, Outbox
from klash_sync.deliver.invite.plan import Invitation, invited
from klash_sync.deliver.invite.smtp import SmtpConfig, smtp_config
from klash_sync.errors import SettingsError
from klash_sync.render.snapshot import Snapshot
from klash_sync.settings import Settings
from klash_sync.state.store import Store

log = logging.getLogger(__name__)


class InviteWorker:
    """``on_status`` gets the outbox's per-mentor counts at start and after every pass:
    how the status page (through ``Live``) learns them without reading the database
    on every request."""

    def __init__(self, settings: Settings, clock: Clock, store: Store,
                 on_status: Callable[[dict[str, MentorOutbox]], None] | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.outbox = Outbox(store)
        self.on_status = on_status
        self.config: SmtpConfig | None = None
        self.config_error: str | None = None
        try:
            self.config = smtp_config(settings)
        except SettingsError as e:
            self.config_error = str(e)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="invites")
        self._running: Future[None] | None = None
        self._quiet_from: float | None = None
        self._dirty = False
        self._warned = False
        self.held: dict[str, list[Invitation]] = {}
        self._lock = threading.Lock()
        self.publish()

    def publish(self) -> None:
        """Hand the outbox's current counts to whoever shows them."""
        if self.on_status is not None:
            self.on_status(self.outbox.status())

    def changed(self) -> None:
        """A programme was applied: restart the quiet period."""
        self._dirty = True
        self._quiet_from = self.clock.monotonic()

    def _due(self) -> bool:
        if self._quiet_from is None:
            return False
        if self._dirty:
            return self.clock.monotonic() - self._quiet_from >= self.settings.invite_delay
        retry = self.outbox.next_retry()
        return retry is not None and retry <= self.clock.now()

    def tick(self, snapshot: Snapshot | None) -> None:
        if self._running is not None:
            if not self._running.done():
                return
            self._running = None
        if snapshot is None or not invited(snapshot.programme) or not self._due():
            return
        if self.config is None:
            if not self._warned:
                log.error("mentors have invite = true but no invitations are sent: %s",
                          self.config_error or "KLASH_SMTP_URL is not set")
                self._warned = True
            return
        self._dirty = False
        self._running = self._pool.submit(self._pass, snapshot, self.config)

    def _pass(self, snapshot: Snapshot, config: SmtpConfig) -> None:
        try:
            report: InviteReport = send(snapshot, self.outbox, config, now=self.clock.now,
                                        retry_max=self.settings.retry_max)
            with self._lock:
                self.held = report.held
        except Exception:  # one bad pass must not end the worker; it is tried again later
            log.exception("invitation pass failed")
            self._dirty = True
        finally:
            self.publish()

    def send_now(self, work: Callable[[Outbox], InviteReport]) -> Future[InviteReport]:
        """An operator's `invites --send` handed over by the CLI: ``work`` (the action's pass,
        ``actions.invites_send``) runs on the worker's own thread, after any pass already
        running, so two passes never send at the same time."""
        def run() -> InviteReport:
            try:
                report = work(self.outbox)
                with self._lock:
                    self.held = report.held
                return report
            finally:
                self.publish()

        return self._pool.submit(run)

    def idle(self) -> bool:
        return self._running is None or self._running.done()

    def status(self) -> dict[str, MentorOutbox]:
        return self.outbox.status()

    def problems(self, snapshot: Snapshot | None, now: datetime, unhealthy_after: float) -> list[str]:
        """What /healthz lists as wrong with invitations (mentor ids, never addresses)."""
        found = []
        failing = sorted(
            line.mentor for line in self.status().values()
            if line.failed or (line.answer and line.failing_since is not None
                               and (now - line.failing_since).total_seconds() > unhealthy_after)
        )
        if failing:
            found.append(f"invitations failing: {', '.join(failing)}")
        with self._lock:
            if self.held:
                found.append(f"cancellations held (klash-sync invites --send --allow-mass-cancel): "
                             f"{', '.join(sorted(self.held))}")
        if self.config is None and snapshot is not None and invited(snapshot.programme):
            found.append("invitations cannot be sent: "
                         + (self.config_error or "KLASH_SMTP_URL is not set"))
        return found

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.outbox.close()
