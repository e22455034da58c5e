"""Publishing: the programme revised in the state store, then rendered into a snapshot.

The one place where rendering meets the store: revisions and the change log are
written first, then every event and feed is rendered (pure), then the feeds' Last-Modified
stamps are taken from the store.
"""

from __future__ import annotations

import gzip
import hashlib
from datetime import datetime

from klash_sync.programme.model import Programme, Session
from klash_sync.render.changes import describe, summary
from klash_sync.render.ical import calendar_bytes, fingerprint, render_event, vtimezone
from klash_sync.render.normalise import content_hash
from klash_sync.render.snapshot import Feed, Snapshot, feed_path
from klash_sync.state.changelog import Entry
from klash_sync.state.records import Revised
from klash_sync.state.store import Store


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

    def words(revised: Revised) -> list[Entry]:
        entries = []
        for sid in sorted(revised.happened):
            fi, en, sv = describe(revised.happened[sid], revised.previous.get(sid), summaries.get(sid))
            entries.append((now, sid, revised.happened[sid], fi, en, sv))
        return entries

    revised = store.revise(prints, now, summaries, changes=words)
    revisions, happened = revised.revisions, revised.happened
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
