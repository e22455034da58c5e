"""Feeds over HTTP through waitress on a free loopback port: 200, 304, 404, HEAD, gzip."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import pytest

from klash_sync.programme.load import load
from klash_sync.service.publish import publish
from klash_sync.state.store import Store
from klash_sync.status import Live
from klash_sync.web.http import http_date
from tests.fixtures.common import SHIPPED, fetch
from tests.fixtures.parsers import read_icaljs, read_vobject

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def site(serve_live, tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    live = Live()
    running = serve_live(live)
    live.set_snapshot(publish(load(SHIPPED), store, now=T0, base_url=running.app.settings.base_url))
    yield running
    store.close()


FEEDS = ["/feeds/programme.ics", "/feeds/mentors/milja-kopsi.ics",
         "/feeds/municipalities/vantaa.ics"]


@pytest.mark.parametrize("path", FEEDS)
def test_feed_200_with_caching_headers(site, path):
    r = fetch(site.url, path)
    assert r.status == 200
    assert r.headers["content-type"] == "text/calendar; charset=utf-8"
    assert r.headers["etag"].startswith('"')
    assert not r.headers["etag"].startswith("W/")
    assert r.headers["last-modified"] == http_date(T0)
    assert int(r.headers["content-length"]) == len(r.body)
    assert r.body.startswith(b"BEGIN:VCALENDAR\r\n")
    assert r.body.endswith(b"END:VCALENDAR\r\n")
    assert r.body == site.live.snapshot.feeds[path].body


def test_served_feeds_read_by_independent_parsers(site):
    programme = site.live.snapshot.programme
    for path, expected in [("/feeds/programme.ics", programme.sessions),
                           ("/feeds/mentors/milja-kopsi.ics", programme.sessions_of("milja-kopsi")),
                           ("/feeds/municipalities/vantaa.ics",
                            programme.sessions_of_municipality("vantaa"))]:
        body = fetch(site.url, path).body
        for reader in (read_vobject, read_icaljs):
            events = reader(body)
            assert {uid.split("@")[0]: (e["start"], e["end"]) for uid, e in events.items()} == {
                s.id: (s.date.isoformat(), (s.date + timedelta(days=1)).isoformat())
                for s in expected
            }


def test_conditional_get_if_none_match(site):
    first = fetch(site.url, "/feeds/programme.ics")
    again = fetch(site.url, "/feeds/programme.ics", headers={"If-None-Match": first.headers["etag"]})
    assert again.status == 304
    assert again.body == b""
    assert again.headers["etag"] == first.headers["etag"]
    listed = fetch(site.url, "/feeds/programme.ics",
                   headers={"If-None-Match": f'"other", {first.headers["etag"]}'})
    assert listed.status == 304
    weak = fetch(site.url, "/feeds/programme.ics", headers={"If-None-Match": "W/" + first.headers["etag"]})
    assert weak.status == 304
    stale = fetch(site.url, "/feeds/programme.ics", headers={"If-None-Match": '"stale"'})
    assert stale.status == 200
    assert stale.body == first.body
    # A different feed's ETag does not validate this one.
    other = fetch(site.url, "/feeds/mentors/milja-kopsi.ics")
    assert fetch(site.url, "/feeds/programme.ics",
                 headers={"If-None-Match": other.headers["etag"]}).status == 200


def test_conditional_get_if_modified_since(site):
    assert fetch(site.url, "/feeds/programme.ics",
                 headers={"If-Modified-Since": http_date(T0)}).status == 304
    assert fetch(site.url, "/feeds/programme.ics",
                 headers={"If-Modified-Since": http_date(T0 + timedelta(days=1))}).status == 304
    assert fetch(site.url, "/feeds/programme.ics",
                 headers={"If-Modified-Since": http_date(T0 - timedelta(seconds=1))}).status == 200
    assert fetch(site.url, "/feeds/programme.ics",
                 headers={"If-Modified-Since": "not a date"}).status == 200
    # If-None-Match takes precedence over If-Modified-Since.
    assert fetch(site.url, "/feeds/programme.ics", headers={
        "If-None-Match": '"stale"', "If-Modified-Since": http_date(T0)}).status == 200


def test_head_has_headers_and_no_body(site):
    get = fetch(site.url, "/feeds/programme.ics")
    head = fetch(site.url, "/feeds/programme.ics", method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["etag"] == get.headers["etag"]


def test_gzip_when_asked(site):
    plain = fetch(site.url, "/feeds/programme.ics")
    zipped = fetch(site.url, "/feeds/programme.ics", headers={"Accept-Encoding": "gzip, deflate"})
    assert zipped.status == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["vary"]
    assert gzip.decompress(zipped.body) == plain.body
    assert len(zipped.body) < len(plain.body)
    assert zipped.headers["etag"] != plain.headers["etag"]
    assert "content-encoding" not in plain.headers
    refused = fetch(site.url, "/feeds/programme.ics", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    # A client revalidating its gzip copy gets a 304.
    assert fetch(site.url, "/feeds/programme.ics", headers={
        "Accept-Encoding": "gzip", "If-None-Match": zipped.headers["etag"]}).status == 304


@pytest.mark.parametrize("path", ["/feeds/mentors/nobody.ics", "/feeds/municipalities/turku.ics",
                                  "/feeds/other.ics", "/nothing", "/feeds/mentors/../programme.ics"])
def test_unknown_gets_short_404(site, path):
    r = fetch(site.url, path)
    assert r.status == 404
    assert len(r.body) < 100
    assert b"Traceback" not in r.body


def test_page_lists_sessions_and_subscribe_links(site):
    r = fetch(site.url, "/")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.body.decode()
    for session in site.live.snapshot.programme.sessions:
        assert session.title in html
    for path in ("/feeds/programme.ics", "/feeds/municipalities/janakkala.ics"):
        assert f'href="{site.url}{path}"' in html
        assert f'href="webcal://{site.url.split("://")[1]}{path}"' in html
    assert "koko päivä" in html


def test_other_methods_not_allowed(site):
    r = fetch(site.url, "/feeds/programme.ics", method="POST", body=b"x")
    assert r.status == 405
    assert r.headers["allow"] == "GET, HEAD"


def test_304_keeps_the_connection_open(site):
    """Clients revalidating feeds reuse their connection (waitress alone would close it)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(site.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "/feeds/programme.ics")
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    for _ in range(3):
        conn.request("GET", "/feeds/programme.ics", headers={"If-None-Match": first.getheader("ETag")})
        again = conn.getresponse()
        again.read()
        assert again.status == 304
        assert again.getheader("Connection") is None
        assert conn.sock is sock, "the same connection answered"
    conn.request("GET", "/feeds/programme.ics", headers={"If-None-Match": first.getheader("ETag"),
                                                         "Connection": "close"})
    closing = conn.getresponse()
    assert closing.status == 304
    assert closing.getheader("Connection") == "close"
    conn.close()
