"""An action's world in a one-shot command: its own store, snapshot, syncer and outbox.

The command holds the state directory's lock before it makes a ``LocalContext``
(``state/lock.py``); everything here then writes as the only writer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import TracebackType
from urllib.parse import urlsplit

from klash_sync.deliver.caldav.sync import CalendarResult, Job, Syncer, jobs_for
from klash_sync.deliver.invite.channel import InviteReport
from klash_sync.deliver.invite.imap import imap_config
from klash_sync.deliver.invite.outbox import Outbox
from klash_sync.deliver.invite.replies import ReadReport, read_replies
from klash_sync.deliver.invite.smtp import SmtpConfig, smtp_config
from klash_sync.embedded.mount import Embedded
from klash_sync.errors import UserError
from klash_sync.programme.model import Programme
from klash_sync.render.snapshot import Snapshot
from klash_sync.service.loopback import loopback_server
from klash_sync.service.publish import publish
from klash_sync.settings import Settings
from klash_sync.state.store import Store
from klash_sync.web.static import export_all
from klash_sync.web.tokens import FeedKeys

NOT_SET_UP = ("(the embedded CalDAV server has not been set up yet: its calendars are not "
              "planned; `klash-sync sync` or `run` creates them)")
NO_MAILBOX = "no mailbox to read: set KLASH_IMAP_URL (see the README, 'Answers by e-mail')"


def now() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def syncer_context(settings: Settings, store: Store, *, readonly: bool = False,
                   note: Callable[[str], None] | None = None) -> Iterator[Syncer]:
    """A Syncer, with the embedded server on a private loopback port when it is needed.

    ``readonly`` (``plan``) uses the embedded server as a writer left it, creating and
    moving nothing; before any writer has set it up there is nothing on it to plan
    against, which ``note`` is told.
    """
    if not settings.embedded_caldav:
        syncer = Syncer(settings, store)
    elif readonly and not Embedded.is_set_up(settings.state_dir):
        if note is not None:
            note(NOT_SET_UP)
        syncer = Syncer(settings.model_copy(update={"embedded_caldav": False}), store)
    else:
        embedded = Embedded(settings.state_dir, prefix=urlsplit(settings.base_url).path,
                            readonly=readonly)
        with loopback_server(embedded) as base:
            syncer = Syncer(settings, store, embedded=embedded, dav_base=base)
            try:
                yield syncer
            finally:
                syncer.close()
        return
    try:
        yield syncer
    finally:
        syncer.close()


class LocalContext:
    """``actions.Context`` for a command that holds the state directory itself."""

    def __init__(self, settings: Settings, programme: Programme) -> None:
        self.settings = settings
        self._programme = programme
        self.store = Store(settings.state_db)
        self._snapshot: Snapshot | None = None
        self._embedded: Embedded | None = None

    def __enter__(self) -> LocalContext:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.store.close()

    @property
    def programme(self) -> Programme:
        return self._programme

    @property
    def snapshot(self) -> Snapshot:
        """The programme published against the store (its revisions recorded), made once."""
        if self._snapshot is None:
            self._snapshot = publish(self._programme, self.store, now=now(),
                                     base_url=self.settings.event_base_url)
        return self._snapshot

    def now(self) -> datetime:
        return now()

    def keys(self) -> FeedKeys | None:
        return FeedKeys.from_settings(self.settings, self.store)

    def embedded(self) -> Embedded | None:
        if self._embedded is None and self.settings.embedded_caldav:
            self._embedded = Embedded(self.settings.state_dir,
                                      prefix=urlsplit(self.settings.base_url).path)
        return self._embedded

    def jobs(self) -> list[Job]:
        return jobs_for(self.snapshot, self.settings, self.store)

    def sync(self, jobs: list[Job] | None, *, allow_mass_delete: bool,
             on_result: Callable[[CalendarResult], None]) -> list[CalendarResult]:
        snapshot, store, settings = self.snapshot, self.store, self.settings
        with syncer_context(settings, store) as syncer:
            if jobs is None:
                return syncer.run(
                    snapshot, allow_mass_delete=allow_mass_delete, on_result=on_result,
                    republish=lambda old: publish(old.programme, store, now=now(),
                                                  base_url=settings.event_base_url, previous=old),
                ).results
            results = []
            for job in jobs:
                result = syncer.sync_one(job, snapshot.programme.programme.uid_domain,
                                         allow_mass_delete=allow_mass_delete)
                on_result(result)
                results.append(result)
            return results

    def smtp_config(self) -> SmtpConfig | None:
        return smtp_config(self.settings)

    def invitations(self, work: Callable[[Outbox], InviteReport]) -> InviteReport:
        outbox = Outbox(self.store)
        try:
            return work(outbox)
        finally:
            outbox.close()

    def published(self) -> None:
        if self.settings.site_dir is not None:
            export_all(self.snapshot, self.settings, self.settings.site_dir, self.keys(),
                       self.store.recent_changes(30))

    def read_replies(self) -> ReadReport:
        config = imap_config(self.settings)
        if config is None:
            raise UserError(NO_MAILBOX)
        return read_replies(config, self.snapshot, self.store, Outbox(self.store).sent(), now=now,
                            authserv_id=self.settings.imap_authserv_id)
