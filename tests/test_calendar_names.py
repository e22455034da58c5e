"""Calendars we create carry the mentor's feed title, so apps show one name for both."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

from klash_sync.config import load
from klash_sync.feeds import publish
from klash_sync.live import Live
from klash_sync.settings import Settings
from klash_sync.state import Store
from klash_sync.sync import Syncer
from klash_sync.targets.embedded import SERVICE_USER, Embedded

from .conftest import SHIPPED, fetch

PROPFIND = (b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:displayname/></d:prop>'
            b"</d:propfind>")


def test_embedded_calendar_is_named_like_the_mentors_feed(serve_live, tmp_path):
    state = tmp_path / "state"
    embedded = Embedded(state)
    store = Store(state / "state.sqlite3")
    live = Live()
    site = serve_live(live)
    site.app.dav = embedded.mounted
    settings = Settings(state_dir=state, _env_file=None)  # type: ignore[call-arg]
    snapshot = publish(load(SHIPPED), store, now=datetime(2026, 1, 1, tzinfo=UTC), base_url=site.url)
    live.set_snapshot(snapshot)
    report = Syncer(settings, store, embedded=embedded, dav_base=site.url).run(snapshot)
    store.close()
    assert report.ok, [r.error for r in report.results]
    auth = base64.b64encode(f"{SERVICE_USER}:{embedded.service_password}".encode()).decode()
    for mentor in snapshot.programme.mentors:
        answer = fetch(site.url, Embedded.calendar_path(mentor.id), "PROPFIND",
                       {"Authorization": f"Basic {auth}", "Depth": "0",
                        "Content-Type": "application/xml"}, PROPFIND)
        assert answer.status == 207
        name = re.search(rb"<[^>]*displayname>([^<]*)<", answer.body)
        assert name is not None, answer.body
        expected = snapshot.feeds[f"/feeds/mentors/{mentor.id}.ics"].title
        assert name.group(1).decode() == expected
        assert expected.endswith(f" – {mentor.name}")
