"""From a programme to a published snapshot: every event and every feed, rendered once.

A ``Snapshot`` is immutable and holds the bytes of each feed with its gzip form,
ETag and Last-Modified, so that serving a feed is a dictionary lookup and a 304
costs no rendering at all. The daemon swaps in a new snapshot when the programme
changes; requests in flight keep the one they started with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from klash_sync.programme.model import Programme, Session
from klash_sync.render.ical import start_instant
from klash_sync.state.records import Revision


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


