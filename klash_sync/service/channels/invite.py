"""The e-mail invitations as the scheduler drives them: one unit, a pass over the outbox.

The invitation planner works over every invited mentor at once (a message's SEQUENCE
and the mass-cancel guard need the whole outbox), so the channel has a single unit
whose signature is the programme: any applied edit restarts the channel's quiet
period (``KLASH_INVITE_DELAY``, so an organiser's three quick edits make one message),
and a pass starts once the programme has been quiet that long, or when a message that
met a temporary refusal is due again (the outbox keeps those retry times itself, so a
pass that leaves messages waiting is not retried by the scheduler). Within a pass one
refused recipient never stops the others (``deliver.invite.channel.send``); status is
per mentor, read from the outbox after every pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from klash_sync.clock import Clock
from klash_sync.deliver.invite.channel import send
from klash_sync.deliver.invite.outbox import MentorOutbox, Outbox
from klash_sync.deliver.invite.plan import Invitation, invited
from klash_sync.deliver.invite.smtp import SmtpConfig, smtp_config
from klash_sync.errors import SettingsError
from klash_sync.programme.model import Programme
from klash_sync.render.snapshot import Snapshot
from klash_sync.service.dispatch import Unit
from klash_sync.service.scheduler import Ask, Outcome
from klash_sync.settings import Settings
from klash_sync.state.store import Store
from klash_sync.status import Record

log = logging.getLogger(__name__)

OUTBOX = "outbox"


def record(line: MentorOutbox) -> Record:
    """One mentor's outbox line as a status record."""
    return Record("invite", line.mentor, line.mentor, ok=not line.failed and line.answer is None,
                  last_success=line.last_sent, failing_since=line.failing_since, error=line.answer,
                  counts={"sent": line.sent, "pending": line.pending, "failed": line.failed},
                  sessions=tuple(line.sessions))


class Invitations:
    """The ``Channel`` of e-mail invitations."""

    name = "invite"
    section = "invitations"
    unit: str | None = None
    levels: tuple[str, ...] = ("sent", "pending", "failed")
    workers = 1  # one pass at a time: two passes never send at once
    per_group = 1
    reports = True  # status is per mentor, read from the outbox

    def __init__(self, settings: Settings, clock: Clock, store: Store) -> None:
        self.settings = settings
        self.clock = clock
        self.quiet = settings.invite_delay
        self.outbox = Outbox(store)
        self.config: SmtpConfig | None = None
        self.config_error: str | None = None
        try:
            self.config = smtp_config(settings)
        except SettingsError as e:
            self.config_error = str(e)
        self._warned = False
        self._lock = threading.Lock()
        self.held: dict[str, list[Invitation]] = {}

    def items(self, snapshot: Snapshot) -> Iterable[Programme]:
        return [snapshot.programme] if invited(snapshot.programme) else []

    @staticmethod
    def everything(snapshot: Snapshot) -> dict[str, Programme]:
        """The one unit, whether or not anyone is invited (an operator's `invites --send`)."""
        return {OUTBOX: snapshot.programme}

    def view(self, item: Programme) -> Unit:
        return Unit(OUTBOX, "*", item)  # the programme compares by content

    def run(self, item: Programme, snapshot: Snapshot, ask: Ask | None) -> Outcome:
        if self.config is None:
            if not self._warned:
                log.error("mentors have invite = true but no invitations are sent: %s",
                          self._no_server())
                self._warned = True
            return Outcome(False, self._no_server(), lines=["no SMTP server: " + self._no_server()],
                           retry=False)
        # An operator's `invites --send` also sends what waits out a backoff, at once.
        report = send(snapshot, self.outbox, self.config, now=self.clock.now,
                      allow_mass_cancel=ask is not None and ask.allow_mass,
                      retry_max=self.settings.retry_max, retry_waiting=ask is not None)
        with self._lock:
            self.held = report.held
        summary = (f"summary: {len(report.sent)} sent, {len(report.failed)} not sent, "
                   f"{sum(len(v) for v in report.held.values())} held")
        return Outcome(report.ok, None if report.ok else summary, actions={"send": len(report.sent)},
                       failed=tuple(sorted({d.invitation.mentor for d in report.failed})),
                       lines=[summary], retry=False)

    def retry_due(self) -> bool:
        retry = self.outbox.next_retry()
        return retry is not None and retry <= self.clock.now()

    def status(self, snapshot: Snapshot | None) -> tuple[list[Record], list[str]]:
        problems = []
        with self._lock:
            if self.held:
                problems.append(f"cancellations held (klash-sync invites --send --allow-mass-cancel): "
                                f"{', '.join(sorted(self.held))}")
        if self.config is None and snapshot is not None and invited(snapshot.programme):
            problems.append("invitations cannot be sent: " + self._no_server())
        return [record(line) for line in self.outbox.status().values()], problems

    def _no_server(self) -> str:
        return self.config_error or "KLASH_SMTP_URL is not set"

    def close(self, finished: bool) -> None:
        self.outbox.close()
