"""Applying a calendar's plan: every write with a precondition, every confirmed one recorded.

Creates carry If-None-Match, updates and deletes If-Match on the ETag we saw. When a
precondition fails the resource is read again and the write decided anew: our own
earlier write whose answer was lost is recognised (never written twice), an event
that is no longer ours is left alone, one that keeps changing is retried next pass;
an answer the mentor gave on the copy meanwhile is recorded and carried over.
Each write that the server confirmed is in the state store before the next is sent,
so a crash mid-pass loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from klash_sync.deliver.caldav.answers import read_back
from klash_sync.deliver.caldav.calendar import PreconditionFailed
from klash_sync.deliver.caldav.jobs import CalendarResult, Job
from klash_sync.deliver.caldav.plan import Adopt, Create, Delete, Desired, Forget, Remote, Update, carried
from klash_sync.deliver.caldav.remote import Calendar
from klash_sync.errors import TargetConflict
from klash_sync.render.normalise import inspect
from klash_sync.state.store import Item, Store

log = logging.getLogger(__name__)


class Apply:
    """Applies one job's actions to its calendar, counting them in ``result``."""

    def __init__(self, store: Store, job: Job, cal: Calendar, uid_domain: str,
                 result: CalendarResult, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.clock = clock
        self.store = store
        self.job = job
        self.cal = cal
        self.uid_domain = uid_domain
        self.result = result

    def apply(self, action: object) -> None:
        """One action; its confirmed effect is in the store when this returns."""
        key = self.job.key
        if isinstance(action, Adopt):
            self.store.put_item(key, Item(action.uid, action.href, action.etag, action.hash))
        elif isinstance(action, Forget):
            self.store.drop_item(key, action.uid)
        elif isinstance(action, Create):
            self.create(action)
        elif isinstance(action, Update):
            self.update(action.uid, action.href, action.etag, action.body, action.hash,
                        restore=action.restore, desired=action.desired)
        elif isinstance(action, Delete):
            self.delete(action)

    def create(self, action: Create) -> None:
        try:
            etag = self.cal.create(action.href, action.body)
        except PreconditionFailed:
            # Something is already there: most often our own earlier write whose answer
            # was lost. Re-read it instead of writing twice.
            current = self.cal.fetch([action.href]).get(action.href)
            if current is None:
                raise TargetConflict(f"{action.href} exists but cannot be read") from None
            etag, body = current
            seen = inspect(body, self.uid_domain)
            if not seen.ours or seen.uid != action.uid:
                raise TargetConflict(
                    f"{action.href} is taken by an event that is not ours; left untouched"
                ) from None
            if seen.hash == action.hash:
                self.store.put_item(self.job.key, Item(action.uid, action.href, etag, action.hash))
                return
            self.update(action.uid, action.href, etag, action.body, action.hash)
            return
        self.store.put_item(self.job.key, Item(action.uid, action.href, etag, action.hash))
        self.result.created += 1
        if action.restore:
            self.result.restored.append(action.uid)
            log.info("calendar of %s: put back %s, which was deleted on the server",
                     self.job.mentor, action.uid)

    def update(self, event_uid: str, href: str, etag: str | None, body: bytes, digest: str, *,
               restore: bool = False, desired: Desired | None = None) -> None:
        for _attempt in range(3):
            try:
                new_etag = self.cal.update(href, body, etag)
            except PreconditionFailed:
                current = self.cal.fetch([href]).get(href)
                if current is None:  # deleted meanwhile: create it again
                    self.create(Create(event_uid, href, body, digest, restore=True))
                    return
                etag, seen_body = current
                seen = inspect(seen_body, self.uid_domain)
                if not seen.ours or seen.uid != event_uid:
                    raise TargetConflict(f"{href} is no longer our event; left untouched") from None
                # The mentor may just have answered on this copy: keep the answer, and
                # carry it over into what we write.
                copy = Remote(href, etag, True, seen.uid, seen.hash, seen.sequence, seen.core,
                              seen.partstats, seen.at, seen.when)
                read_back(self.store, self.job, [copy], self.clock())
                if seen.hash == digest:
                    self.store.put_item(self.job.key, Item(event_uid, href, etag, digest))
                    return
                if desired is not None:
                    body = carried(desired, seen.partstats, seen.when)
                continue
            self.store.put_item(self.job.key, Item(event_uid, href, new_etag, digest))
            self.result.updated += 1
            if restore:
                self.result.restored.append(event_uid)
                log.info("calendar of %s: restored %s, which was edited on the server",
                         self.job.mentor, event_uid)
            return
        raise TargetConflict(f"{href} keeps changing on the server; will try again next sync")

    def delete(self, action: Delete) -> None:
        etag = action.etag
        for _attempt in range(3):
            try:
                self.cal.delete(action.href, etag)
            except PreconditionFailed:
                current = self.cal.fetch([action.href]).get(action.href)
                if current is None:
                    break
                etag, body = current
                seen = inspect(body, self.uid_domain)
                if not seen.ours or seen.uid != action.uid:
                    log.warning("calendar of %s: %s is no longer our event; not deleted",
                                self.job.mentor, action.href)
                    break
                continue
            self.result.deleted += 1
            break
        else:
            raise TargetConflict(f"{action.href} keeps changing on the server; will try again")
        if not action.duplicate:
            self.store.drop_item(self.job.key, action.uid)

