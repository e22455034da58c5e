"""What each calendar should hold: the jobs of a pass, their desired events, their results.

Each mentor whom routing sends to CalDAV (their own server, or the embedded one) has
one calendar, a ``Job``: where it is and the events it should hold, one stored object
per session, rendered once per snapshot and shared by every mentor of the session.
Calendars written to before that no longer belong to the programme (the mentor left,
or their target changed) become leaving jobs, whose events of ours are removed.
``purge`` makes purge jobs of a mentor's calendars: every event of ours found there goes.

``CalendarResult`` and ``SyncReport`` are the channel's ``Result`` and ``Report``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from icalendar import Event

from klash_sync.deliver.base import Report, Result
from klash_sync.deliver.caldav.plan import Desired, Plan, safe_name
from klash_sync.errors import TargetConflict
from klash_sync.programme import routing
from klash_sync.programme.model import Mentor, Session
from klash_sync.render.ical import calendar_bytes, uid, when
from klash_sync.render.normalise import times, with_parties
from klash_sync.render.participation import invitee
from klash_sync.render.snapshot import Snapshot
from klash_sync.settings import Settings
from klash_sync.state.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    key: str
    mentor: str
    target: dict[str, Any]  # how to reach it, without secrets; stored for later cleanup
    desired: Mapping[str, Desired]
    leaving: bool = False
    # For a leaving calendar: the mentor's current calendars. Cleanup waits until each
    # has been found, and deletes nothing if one of them is the same collection.
    successors: tuple[str, ...] = ()
    title: str = ""  # the name of a calendar we create: the mentor's feed title
    # ``purge``: remove every event of ours found on the server, whatever the state store
    # knows (nothing, after a lost state directory); find the calendar, never create it.
    purge: bool = False


@dataclass
class CalendarResult(Result):
    """One calendar's pass: ``key`` is the calendar, ``mentor`` its owner."""

    plan: Plan | None = None
    created: int = 0
    updated: int = 0
    deleted: int = 0
    restored: list[str] = field(default_factory=list)
    raised: list[str] = field(default_factory=list)  # session ids whose SEQUENCE a server made us raise
    leaving: bool = False
    found: int = 0  # events of ours on the server when it was listed
    missing: str | None = None  # purge: why there was no calendar to look in

    def counts(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "deleted": self.deleted}


class SyncReport(Report[CalendarResult]):
    """Every calendar's result of one pass."""


def target_of(mentor: Mentor, settings: Settings) -> dict[str, Any] | None:
    """The target description for a mentor, or None when CalDAV does not reach them."""
    channel = routing.channel_of(mentor, embedded=settings.embedded_caldav)
    if channel == routing.CALDAV:
        assert mentor.caldav is not None
        c = mentor.caldav
        return {"kind": "caldav", "url": c.url, "username": c.username,
                "password_env": c.password_env, "password_file": c.password_file,
                "calendar": c.calendar, "ca_bundle": c.ca_bundle, "auth": c.auth}
    if channel == routing.EMBEDDED:
        return {"kind": "embedded", "calendar": mentor.id}
    return None


def calendar_key(mentor_id: str, target: dict[str, Any]) -> str:
    """Identity of one calendar: a new target for a mentor is a new calendar."""
    digest = hashlib.sha256(json.dumps(target, sort_keys=True).encode()).hexdigest()[:12]
    return f"{mentor_id}:{target['kind']}:{digest}"


def desired_for(snapshot: Snapshot, mentor_id: str, *, asking: bool = True) -> dict[str, Desired]:
    """The stored objects a mentor's calendar should hold: one VEVENT each, no METHOD.

    Each names the organiser and asks the mentor (``render.participation``) when both
    have an address, and ``asking``: not on the embedded server, where mentors' logins
    are read-only and an Accept could not be saved. The content hash then covers those
    addresses too. Kept in the snapshot's cache: the periodic syncs of an unchanged
    programme reuse them.
    """
    key = ("desired", mentor_id) if asking else ("desired-plain", mentor_id)
    cached: dict[str, Desired] | None = snapshot.cache.get(key)
    if cached is not None:
        return cached
    programme = snapshot.programme
    asked = invitee(programme, mentor_id) if asking else None
    wanted = {}
    for session in programme.sessions_of(mentor_id):
        event_uid = uid(session.id, programme)
        body, digest = _object(snapshot, session.id), snapshot.hashes[session.id]
        if asked is not None:
            body, digest = asked.insert(body), with_parties(digest, asked.parties)
        wanted[event_uid] = Desired(event_uid, safe_name(event_uid), body, digest,
                                    snapshot.revisions[session.id].sequence,
                                    snapshot.cores.get(session.id, ""), asked,
                                    _times(snapshot, session), snapshot.revisions[session.id].changed)
    snapshot.cache[key] = wanted
    return wanted


def _object(snapshot: Snapshot, session_id: str) -> bytes:
    """The stored form of one event (shared by every mentor of the session)."""
    key = ("object", session_id)
    body = snapshot.cache.get(key)
    if body is None:
        programme = snapshot.programme
        index = snapshot.cache.get("sessions")
        if index is None:
            index = snapshot.cache["sessions"] = {s.id: s for s in programme.sessions}
        session = index[session_id]
        body = calendar_bytes([snapshot.events[session_id]], programme=programme,
                              name=programme.programme.name, timed=not session.all_day, feed=False,
                              timezone=snapshot.timezone)
        snapshot.cache[key] = body
    return body


def _times(snapshot: Snapshot, session: Session) -> str:
    """The session's DTSTART and DTEND as ``normalise.times`` reads them from a copy."""
    event = Event()
    start, end = when(session, ZoneInfo(snapshot.programme.programme.timezone))
    event.add("DTSTART", start)
    event.add("DTEND", end)
    return times(event)


def carry_cache(previous: Snapshot, snapshot: Snapshot) -> int:
    """Reuse the previous snapshot's stored objects and desired sets where nothing changed.

    After an edit of one session, ``jobs_for`` would otherwise render every session's
    stored form again and scan every session for every mentor: work that grows with the
    programme, for an edit that concerns two mentors. An object is reused when its event
    is the very one the previous snapshot rendered (``publish`` keeps unchanged events)
    under the same programme header and time zone; a mentor's desired set when all of
    its sessions are reused and the mentor has the same sessions. Returns the mentors
    whose desired set was carried.
    """
    if previous is snapshot or previous.programme.programme != snapshot.programme.programme \
            or previous.timezone != snapshot.timezone:
        return 0
    same: set[str] = set()
    for sid, event in snapshot.events.items():
        if previous.events.get(sid) is event and previous.revisions.get(sid) == snapshot.revisions.get(sid):
            same.add(sid)
            body = previous.cache.get(("object", sid))
            if body is not None:
                snapshot.cache.setdefault(("object", sid), body)
    before: dict[str, list[str]] = {}
    for session in previous.programme.sessions:
        for mentor in session.mentors:
            before.setdefault(mentor, []).append(session.id)
    now: dict[str, list[str]] = {}
    for session in snapshot.programme.sessions:
        for mentor in session.mentors:
            now.setdefault(mentor, []).append(session.id)
    carried = 0
    for mentor, sids in now.items():
        for kind in ("desired", "desired-plain"):
            wanted = previous.cache.get((kind, mentor))
            if wanted is not None and before.get(mentor) == sids and all(sid in same for sid in sids):
                snapshot.cache.setdefault((kind, mentor), wanted)
                carried += 1
    return carried


def jobs_for(snapshot: Snapshot, settings: Settings, store: Store) -> list[Job]:
    """The programme's calendars, then the cleanup of calendars it no longer uses."""
    jobs = []
    current: dict[str, list[str]] = {}
    for mentor in snapshot.programme.mentors:
        target = target_of(mentor, settings)
        if target is None:
            continue
        key = calendar_key(mentor.id, target)
        current.setdefault(mentor.id, []).append(key)
        title = f"{snapshot.programme.programme.name} – {mentor.name}"  # as the mentor's feed
        wanted = desired_for(snapshot, mentor.id, asking=target["kind"] == "caldav")
        jobs.append(Job(key, mentor.id, target, wanted, title=title))
    keys = {k for ks in current.values() for k in ks}
    for key, record in sorted(store.calendars().items()):
        if key not in keys:
            jobs.append(Job(key, record.mentor, record.target, {}, leaving=True,
                            successors=tuple(current.get(record.mentor, ()))))
    return jobs


def kept(store: Store, job: Job) -> bool:
    """A leaving calendar that must not be cleaned now (True) or may be (False).

    Its record may already have been taken over by a current calendar found at the
    same collection (then there is nothing to clean); and while one of the mentor's
    current calendars has not been found yet, it may turn out to be this very
    collection, so cleanup waits for it. (A purge job is never kept: it does not need
    the store to know the calendar, and looks where the mentor's settings lead.)
    """
    if store.calendar(job.key) is None:
        return True
    for key in job.successors:
        record = store.calendar(key)
        if record is None or record.url is None:
            raise TargetConflict("cleanup waits until the mentor's new calendar has been found")
    return False


def same_as_current(store: Store, job: Job, url: str, dry_run: bool) -> bool:
    """True if a calendar of the programme is this collection: then only forget the old name."""
    for record in store.calendars().values():
        if record.key != job.key and record.url and same_collection(record.url, url):
            if not dry_run:
                store.forget_calendar(job.key)
            log.info("calendar of %s: %s is still in use under another description; "
                     "nothing deleted", job.mentor, url)
            return True
    return False


def same_collection(a: str, b: str) -> bool:
    """Whether two collection URLs name one collection (case of host, default port, slashes)."""
    return _collection_id(a) == _collection_id(b)


@functools.lru_cache(maxsize=65536)  # claim_calendar compares with every calendar, every sync
def _collection_id(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    path = posixpath.normpath(unquote(parts.path) or "/").rstrip("/") + "/"
    return scheme, (parts.hostname or "").lower(), port, path


def session_of(event_uid: str) -> str:
    return event_uid.rsplit("@", 1)[0]
