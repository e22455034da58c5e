"""What a calendar holds: the adapter's shape, the listing step, and SEQUENCE floors.

``Calendar`` is what the channel needs of a CalDAV collection. ``CalDAVCalendar`` is
the one that speaks HTTP; a test may hand the Syncer another with the same methods (an
in-memory calendar) through ``calendar_factory`` and drive the real listing and apply.

``observe`` turns a listing into ``Remote`` entries, reading only what it has not seen;
``raise_floors`` lifts our SEQUENCEs above what a server holds, so no write is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from klash_sync.deliver.caldav.jobs import CalendarResult, Job, session_of
from klash_sync.deliver.caldav.plan import Remote
from klash_sync.render.normalise import inspect
from klash_sync.state.store import Item, Store

_FETCH_BATCH = 200


class Calendar(Protocol):
    """One calendar collection, as the channel uses it (``CalDAVCalendar`` is the real one)."""

    requests: int  # round trips so far

    def open(self) -> str:
        """Find (or create) the collection; return its URL."""

    def listing(self) -> dict[str, str | None]:
        """Every resource's href and ETag."""

    def fetch(self, hrefs: list[str]) -> dict[str, tuple[str | None, bytes]]:
        """The ETag and body of each of ``hrefs`` that exists."""

    def create(self, href: str, body: bytes) -> str | None:
        """Write a new resource (If-None-Match: *); its ETag, if the server said."""

    def update(self, href: str, body: bytes, etag: str | None) -> str | None:
        """Overwrite a resource at ``etag`` (If-Match); its new ETag, if the server said."""

    def delete(self, href: str, etag: str | None) -> None:
        """Remove a resource at ``etag`` (If-Match)."""

    def close(self) -> None:
        """Let go of private resources (shared connections stay open)."""


def observe(store: Store, job: Job, cal: Calendar, state: Mapping[str, Item], uid_domain: str,
            dry_run: bool) -> dict[str, Remote]:
    """What the calendar holds: one PROPFIND, then only the resources not seen at their ETag.

    Our events at the ETag we recorded, and others' events at the ETag seen before, are
    taken from the state store without reading them; everything else is fetched in
    batches and inspected (ours or not, content hash, SEQUENCE, the attendees' PARTSTAT).
    So is a copy of ours that will be rewritten and asks its mentor (``_to_rewrite``).
    """
    listing = cal.listing()
    ours_by_href = {item.href: item for item in state.values()}
    foreign = store.foreign(job.key)
    remote: dict[str, Remote] = {}
    unknown = []
    for href, etag in listing.items():
        known = ours_by_href.get(href)
        if known is not None and (known.etag is None or known.etag == etag) \
                and not _to_read(job, known):
            remote[href] = Remote(href, etag, True, known.uid, known.hash, mine=True)
            if known.etag is None and etag is not None and not dry_run:
                store.put_item(job.key, Item(known.uid, href, etag, known.hash))
        elif href in foreign and foreign[href] == etag and etag is not None:
            remote[href] = Remote(href, etag, False)
        else:
            unknown.append(href)
    for start in range(0, len(unknown), _FETCH_BATCH):
        batch = unknown[start:start + _FETCH_BATCH]
        for href, (etag, body) in cal.fetch(batch).items():
            seen = inspect(body, uid_domain)
            listed = listing.get(href, etag) or etag
            mine = _mine(job, ours_by_href.get(href), listed, seen.uid, seen.at)
            remote[href] = Remote(href, listed, seen.ours, seen.uid if seen.ours else None,
                                  seen.hash, seen.sequence, seen.core, seen.partstats, seen.at,
                                  seen.when, mine)
    seen_foreign = {h: r.etag for h, r in remote.items() if not r.ours}
    if not dry_run and seen_foreign != foreign:  # a no-op sync writes nothing, here too
        store.set_foreign(job.key, seen_foreign)
    return remote


def _to_read(job: Job, known: Item) -> bool:
    """A copy of ours that asks its mentor and must be read although we wrote it last.

    One that will be rewritten, to carry the answer on it over (the store does not keep
    which answer we carried, the copy does); and one whose ETag the server did not give
    us when we wrote it (Cyrus, the embedded Radicale): the ETag listed now may already
    be that of the mentor's answer.
    """
    wanted = job.desired.get(known.uid)
    return wanted is not None and wanted.invitee is not None \
        and (wanted.hash != known.hash or known.etag is None)


def _mine(job: Job, known: Item | None, etag: str | None, uid: str | None,
          at: datetime | None) -> bool:
    """Whether a copy read now is our own last write: at its ETag, or, when the server gave
    none, still with the LAST-MODIFIED we wrote (a client that edits it sets its own)."""
    if known is None or uid != known.uid:
        return False
    if known.etag is not None:
        return known.etag == etag
    wanted = job.desired.get(known.uid)
    return wanted is not None and at is not None and at == wanted.stamp


def raise_floors(store: Store, job: Job, remote: Mapping[str, Remote], result: CalendarResult,
                 clock: Callable[[], datetime]) -> bool:
    """Lift SEQUENCEs the server holds at or above ours; True if any was lifted.

    A write over one of our events must carry a SEQUENCE above the server's copy, or
    clients may ignore it; a copy with the same content must never show a higher
    SEQUENCE than our feeds. The store is raised; the caller publishes the programme
    again (feeds included) and this calendar is synced with the new numbers.
    """
    stale = set()
    for r in remote.values():
        wanted = job.desired.get(r.uid or "")
        if not r.ours or r.mine or r.sequence is None or wanted is None:
            continue
        need = r.sequence if r.core == wanted.core else r.sequence + 1
        if need > wanted.sequence:
            # Raised here, or already by another calendar of the same session this pass:
            # either way this job's copy is stale and must not be written.
            store.raise_sequence(session_of(wanted.uid), need, clock())
            stale.add(session_of(wanted.uid))
    result.raised = sorted(stale)
    return bool(stale)
