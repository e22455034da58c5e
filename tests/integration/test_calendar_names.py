"""Calendars we create carry the mentor's feed title, so apps show one name for both."""

from __future__ import annotations

import base64
import re

from klash_sync.embedded.mount import SERVICE_USER, Embedded
from tests.fixtures.common import fetch
from tests.fixtures.site import synced_embedded_site

PROPFIND = (b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:displayname/></d:prop>'
            b"</d:propfind>")


def test_embedded_calendar_is_named_like_the_mentors_feed(serve_live, tmp_path):
    synced = synced_embedded_site(serve_live, tmp_path)
    site, embedded, snapshot = synced.running, synced.embedded, synced.snapshot
    synced.store.close()
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
