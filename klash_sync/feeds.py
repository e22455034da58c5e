"""From a programme to a published snapshot: every event and every feed, rendered once.

A ``Snapshot`` is immutable and holds the bytes of each feed with its gzip form,
ETag and Last-Modified, so that serving a feed is a dictionary lookup and a 304
costs no rendering at all. The daemon swaps in a new snapshot when the programme
changes; requests in flight keep the one they started with.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .changes import describe, summary
from .ical import Revision, calendar_bytes, fingerprint, render_event, start_instant, vtimezone
from .model import Programme, Session
from .normalise import content_hash
from .state import Store


@dataclass(frozen=True)
class Feed:
    """One subscribable calendar: its address, its bytes, and what HTTP caching needs."""

    path: str
    kind: str  # "programme" | "mentor" | "municipality"
    key: str  # mentor id or municipality slug; "" for the whole programme
    title: str
    sessions: tuple[str, ...]
    body: bytes
    gzipped: bytes
    etag: str
    last_modified: datetime


@dataclass(frozen=True)
class Snapshot:
    """A programme with everything rendered from it, as served at one moment.

    ``hashes`` are the normalised content hashes of the events (as ``normalise`` would
    compute them from a server's copy), so that syncing never re-parses what we rendered.
    ``cache`` holds derived data that syncs reuse for as long as this snapshot is current.
    """

    programme: Programme
    revisions: dict[str, Revision]
    events: dict[str, bytes]
    feeds: dict[str, Feed]
    loaded_at: datetime
    happened: dict[str, str] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    timezone: bytes = b""
    cores: dict[str, str] = field(default_factory=dict)  # hashes without SEQUENCE
    base_url: str | None = None  # the public address in the events' page links, if any
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def feed(self, kind: str, key: str = "") -> Feed | None:
        return next((f for f in self.feeds.values() if f.kind == kind and f.key == key), None)

    def ordered(self, sessions: tuple[Session, ...] | None = None) -> list[Session]:
        """Sessions by start, then id: the order of feeds and pages."""
        tz = ZoneInfo(self.programme.programme.timezone)
        chosen = self.programme.sessions if sessions is None else sessions
        return sorted(chosen, key=lambda s: (start_instant(s, tz), s.id))


def feed_path(kind: str, key: str = "") -> str:
    if kind == "programme":
        return "/feeds/programme.ics"
    if kind == "mentor":
        return f"/feeds/mentors/{key}.ics"
    return f"/feeds/municipalities/{key}.ics"


def publish(programme: Programme, store: Store, *, now: datetime, base_url: str | None,
            previous: Snapshot | None = None) -> Snapshot:
    """Render a programme: revise it in the store, render each event once, build each feed.

    ``base_url`` is the service's public address for the events' page links, or None
    (see ``ical.session_url``). Events whose revision is unchanged since ``previous``
    (rendered for the same address) are taken from it, so a reload after an edit renders
    only what the edit touched.
    """
    prints = {s.id: fingerprint(s, programme) for s in programme.sessions}
    summaries = {s.id: summary(s, programme) for s in programme.sessions}
    revised = store.revise(prints, now, summaries)
    revisions, happened = revised.revisions, revised.happened
    if not revised.first:
        entries = []
        for sid in sorted(happened):
            fi, en, sv = describe(happened[sid], revised.previous.get(sid), summaries.get(sid))
            entries.append((now, sid, happened[sid], fi, en, sv))
        store.add_changes(entries)
    events: dict[str, bytes] = {}
    hashes: dict[str, str] = {}
    cores: dict[str, str] = {}
    for session in programme.sessions:
        sid = session.id
        if (previous is not None and previous.revisions.get(sid) == revisions[sid]
                and sid in previous.hashes and previous.programme.programme == programme.programme
                and previous.base_url == base_url):
            events[sid], hashes[sid] = previous.events[sid], previous.hashes[sid]
            cores[sid] = previous.cores[sid]
            continue
        event = render_event(session, programme, revision=revisions[sid], base_url=base_url)
        events[sid], hashes[sid] = event.to_ical(), content_hash(event)
        cores[sid] = content_hash(event, sequence=False)
    timezone = vtimezone(programme)
    snapshot = Snapshot(programme, revisions, events, {}, now, happened, hashes, timezone,
                        cores=cores, base_url=base_url)
    name = programme.programme.name
    wanted: list[tuple[str, str, str, tuple[Session, ...]]] = [
        ("programme", "", name, programme.sessions)
    ]
    for mentor in programme.mentors:
        wanted.append(("mentor", mentor.id, f"{name} – {mentor.name}",
                       programme.sessions_of(mentor.id)))
    for slug, label in programme.municipalities().items():
        wanted.append(("municipality", slug, f"{name} – {label}",
                       programme.sessions_of_municipality(slug)))
    built = []
    reused: dict[str, Feed] = {}
    for kind, key, title, sessions in wanted:
        old = previous.feeds.get(feed_path(kind, key)) if previous is not None else None
        if (old is not None and old.title == title and previous is not None
                and previous.timezone == timezone and len(old.sessions) == len(sessions)
                and set(old.sessions) == {s.id for s in sessions}
                and all(previous.events.get(s.id) is events[s.id] for s in sessions)):
            # Same sessions, none re-rendered: the same bytes, not built again. An edit
            # to one session rebuilds the few feeds that hold it, not all of them.
            reused[old.path] = old
            built.append((kind, key, title, old.sessions, old.body, old.etag.strip('"')))
            continue
        ordered = snapshot.ordered(sessions)
        body = calendar_bytes(
            (events[s.id] for s in ordered),
            programme=programme,
            name=title,
            timed=any(not s.all_day for s in ordered),
            timezone=timezone,
        )
        built.append((kind, key, title, tuple(s.id for s in ordered), body,
                      hashlib.sha256(body).hexdigest()[:32]))
    changed_at = store.feeds_changed({feed_path(k, key): d for k, key, _, _, _, d in built}, now)
    for kind, key, title, ids, body, digest in built:
        path = feed_path(kind, key)
        if path in reused and reused[path].last_modified == changed_at[path]:
            snapshot.feeds[path] = reused[path]
            continue
        snapshot.feeds[path] = Feed(
            path=path, kind=kind, key=key, title=title, sessions=ids, body=body,
            gzipped=gzip.compress(body, compresslevel=6, mtime=0),
            etag=f'"{digest}"', last_modified=changed_at[path],
        )
    return snapshot
