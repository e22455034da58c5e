"""Private feeds: secret addresses per mentor, rotation, and 404s that reveal nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from klash_sync.programme.load import load
from klash_sync.service.publish import publish
from klash_sync.state.store import Store
from klash_sync.status import Live
from klash_sync.web.tokens import FeedKeys, rotate, token
from tests.fixtures.common import SHIPPED, fetch, run_cli

SECRET = "a-server-secret-of-some-length"


@pytest.fixture
def private_site(serve_live, tmp_path):
    store = Store(tmp_path / "state" / "state.sqlite3")
    live = Live()
    running = serve_live(live, private_feeds=True, secret=SECRET)
    running.app.keys = FeedKeys(SECRET.encode(), store)
    live.set_snapshot(publish(load(SHIPPED), store, now=datetime(2026, 1, 1, tzinfo=UTC),
                              base_url=running.app.settings.base_url))
    yield running, store
    store.close()


def test_mentor_feed_only_at_its_secret_address(private_site):
    site, _store = private_site
    good = token(SECRET.encode(), "milja-kopsi", 0)
    r = fetch(site.url, f"/feeds/mentors/milja-kopsi/{good}.ics")
    assert r.status == 200
    assert b"joensuu-2019-10-01@" in r.body
    assert "private" in r.headers["cache-control"]
    assert fetch(site.url, "/feeds/mentors/milja-kopsi.ics").status == 404
    # A wrong token, another mentor's token, and an unknown mentor look the same.
    unknown = fetch(site.url, f"/feeds/mentors/nobody/{good}.ics")
    for path in (f"/feeds/mentors/milja-kopsi/{good[:-1]}x.ics",
                 f"/feeds/mentors/ulla-nord/{good}.ics",
                 "/feeds/mentors/milja-kopsi/.ics", "/feeds/mentors/milja-kopsi/%00.ics"):
        r = fetch(site.url, path)
        assert (r.status, r.body, r.headers["content-type"]) == (
            unknown.status, unknown.body, unknown.headers["content-type"]), path


def test_rotation_invalidates_the_old_address(private_site):
    site, store = private_site
    old = token(SECRET.encode(), "ulla-nord", 0)
    assert fetch(site.url, f"/feeds/mentors/ulla-nord/{old}.ics").status == 200
    rotate(store, "ulla-nord")
    new = token(SECRET.encode(), "ulla-nord", 1)
    assert new != old
    assert fetch(site.url, f"/feeds/mentors/ulla-nord/{old}.ics").status == 404
    assert fetch(site.url, f"/feeds/mentors/ulla-nord/{new}.ics").status == 200
    # Other mentors' addresses are unaffected.
    assert fetch(site.url, f"/feeds/mentors/milja-kopsi/{token(SECRET.encode(), 'milja-kopsi', 0)}.ics"
                 ).status == 200


def test_mentor_page_shows_the_secret_link_only_behind_the_secret(private_site):
    site, _store = private_site
    good = token(SECRET.encode(), "milja-kopsi", 0)
    public = fetch(site.url, "/mentors/milja-kopsi").body.decode()
    assert good not in public
    assert "/feeds/mentors/milja-kopsi" not in public
    secret_page = fetch(site.url, f"/mentors/milja-kopsi/{good}")
    assert secret_page.status == 200
    assert f"/feeds/mentors/milja-kopsi/{good}.ics" in secret_page.body.decode()
    assert "no-store" in secret_page.headers["cache-control"]
    assert fetch(site.url, "/mentors/milja-kopsi/wrongtoken").status == 404
    index = fetch(site.url, "/").body.decode()
    assert good not in index


def test_public_feeds_can_be_switched_off(serve_live, tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    live = Live()
    site = serve_live(live, public_feeds=False)
    live.set_snapshot(publish(load(SHIPPED), store, now=datetime(2026, 1, 1, tzinfo=UTC),
                              base_url=site.app.settings.base_url))
    assert fetch(site.url, "/feeds/programme.ics").status == 404
    assert fetch(site.url, "/feeds/municipalities/vantaa.ics").status == 404
    assert "/feeds/programme.ics" not in fetch(site.url, "/").body.decode()
    store.close()


def test_feeds_command_lists_and_rotates(tmp_path):
    env = {"KLASH_STATE_DIR": str(tmp_path), "KLASH_PRIVATE_FEEDS": "true", "KLASH_SECRET": SECRET,
           "KLASH_PUBLIC_URL": "https://klash.example.fi"}
    listed = run_cli("feeds", env=env)
    assert listed.code == 0, listed.err
    first = token(SECRET.encode(), "milja-kopsi", 0)
    assert f"https://klash.example.fi/feeds/mentors/milja-kopsi/{first}.ics" in listed.out
    assert f"webcal://klash.example.fi/feeds/mentors/milja-kopsi/{first}.ics" in listed.out
    rotated = run_cli("feeds", "rotate", "milja-kopsi", env=env)
    assert rotated.code == 0
    assert token(SECRET.encode(), "milja-kopsi", 1) in rotated.out
    assert first not in rotated.out
    assert token(SECRET.encode(), "milja-kopsi", 1) in run_cli("feeds", env=env).out
    assert SECRET not in listed.out + listed.err + rotated.out + rotated.err
    missing = run_cli("feeds", env={"KLASH_STATE_DIR": str(tmp_path), "KLASH_PRIVATE_FEEDS": "true"})
    assert missing.code == 2
    assert "KLASH_SECRET" in missing.err
    assert "Traceback" not in missing.err
    bad = run_cli("feeds", "rotate", "nobody", env=env)
    assert bad.code == 2
    assert "milja-kopsi" in bad.err
