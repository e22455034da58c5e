"""What an operator's action sees inside the running daemon (``actions.Context``).

The same actions run in a one-shot command (``local.LocalContext``); here each one
reaches the daemon's own parts: its store, its embedded server, its scheduler for
calendar syncs and its invitation channel's worker for a pass, through ``Operator``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from klash_sync.deliver.caldav.channel import Calendars
from klash_sync.deliver.caldav.sync import CalendarResult, Job
from klash_sync.deliver.invite.channel import InviteReport
from klash_sync.deliver.invite.outbox import Outbox
from klash_sync.deliver.invite.replies import ReadReport
from klash_sync.deliver.invite.smtp import SmtpConfig
from klash_sync.embedded.mount import Embedded
from klash_sync.errors import SettingsError, UserError
from klash_sync.programme.model import Programme
from klash_sync.render.snapshot import Snapshot
from klash_sync.service.local import NO_MAILBOX
from klash_sync.web.tokens import FeedKeys

if TYPE_CHECKING:
    from klash_sync.service.operator import Operator


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
        lane = self.daemon.scheduler.lane(Calendars.name)
        return self.operator.call(lambda: list(lane.due.jobs.values()))

    def sync(self, jobs: list[Job] | None, *, allow_mass_delete: bool,
             on_result: Callable[[CalendarResult], None]) -> list[CalendarResult]:
        return self.operator.sync(jobs, allow_mass_delete, on_result)

    def smtp_config(self) -> SmtpConfig | None:
        channel = self.daemon.invitations
        if channel.config is None and channel.config_error is not None:
            raise SettingsError(channel.config_error)
        return channel.config

    def invitations(self, work: Callable[[Outbox], InviteReport]) -> InviteReport:
        return self.operator.invitations(work)

    def published(self) -> None:
        self.daemon.site.changed()

    def read_replies(self) -> ReadReport:
        channel = self.daemon.replies
        if channel.imap is None and channel.imap_error is not None:
            raise SettingsError(channel.imap_error)
        if channel.imap is None:
            raise UserError(NO_MAILBOX)
        return self.operator.replies(self._snapshot)
