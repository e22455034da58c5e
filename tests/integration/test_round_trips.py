"""What a sync costs in requests and connections, counted at real servers and sockets.

The promises: a first sync costs discovery (at most 3 requests from a server root,
fewer from the principal or the calendar's own URL) + MKCALENDAR + one PUT per event;
an existing calendar costs discovery + one listing + the writes; a no-op sync costs one
request. The count we report is the count the server saw. Connections are reused
across calendars and passes, never more per host than the pool allows, and a server
that closes every connection is handled. Errors say what happened: "connection
refused", "timed out", "redirected to <where>".
"""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from waitress.server import create_server

from klash_sync.deliver.caldav.sync import Syncer
from klash_sync.programme.load import parse
from klash_sync.service.publish import publish
from klash_sync.settings import Settings
from klash_sync.state.store import Store
from klash_sync.web.server import serve, shutdown
from tests.fixtures.caldav_world import ENV
from tests.fixtures.common import fetch
from tests.fixtures.servers import PASSWORDS, DavServer, TcpProxy, start_radicale, start_xandikos

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
EVENTS = 3

# Discovery requests per server and URL form; the calendar's own URL costs one PROPFIND,
# which is also its listing. Radicale's principal is its calendar home, so its answer
# already lists the calendars; Xandikos keeps them one level down (/user/calendars/).
DISCOVERY = {("radicale", "root"): 2, ("radicale", "principal"): 1,
             ("xandikos", "root"): 3, ("xandikos", "principal"): 2}


def principal(server: DavServer) -> str:
    return "/alice/" if server.kind == "radicale" else "/user/"


def home(server: DavServer) -> str:
    return "/alice/" if server.kind == "radicale" else "/user/calendars/"


def text(mentors: dict[str, tuple[str, str]], events: int = EVENTS) -> str:
    """mentors: id -> (url, calendar name); every mentor in every session."""
    out = '[programme]\nname = "Testi"\nuid_domain = "klash.test"\norganiser = "Kuntaliitto"\n'
    for mid, (url, calendar) in mentors.items():
        out += (f'\n[[mentors]]\nid = "{mid}"\nname = "{mid}"\n[mentors.caldav]\nurl = "{url}"\n'
                f'username = "alice"\npassword_env = "PW_ALICE"\ncalendar = "{calendar}"\n')
    names = ", ".join(f'"{m}"' for m in mentors)
    for n in range(events):
        out += (f'\n[[sessions]]\nid = "s{n}"\ntitle = "S{n}"\ndate = 2019-11-{n + 1:02d}\n'
                f'mentors = [{names}]\n')
    return out


class Rig:
    """A store and one Syncer kept across passes (as the daemon keeps it)."""

    def __init__(self, tmp: Path, **settings: object) -> None:
        self.store = Store(tmp / "state" / "state.sqlite3")
        options = {"request_timeout": 3, "sync_workers": 1, **settings}
        self.settings = Settings(state_dir=tmp / "state", embedded_caldav=False, _env_file=None,
                                 **options)  # type: ignore[call-arg]
        self.syncer = Syncer(self.settings, self.store, environ=ENV)
        self.now = T0

    def sync(self, programme: str):
        self.now += timedelta(minutes=5)
        snapshot = publish(parse(programme.encode(), "p.toml"), self.store, now=self.now,
                           base_url="https://klash.test")
        return self.syncer.run(snapshot)

    def close(self) -> None:
        self.syncer.close()
        self.store.close()


@pytest.fixture(params=["radicale", "xandikos"])
def server(request, tmp_path: Path):
    start = start_radicale if request.param == "radicale" else start_xandikos
    server = start(tmp_path / request.param)
    yield server
    server.stop()


@pytest.fixture
def rig(tmp_path: Path):
    rig = Rig(tmp_path)
    yield rig
    rig.close()


def mkcalendar(server: DavServer, path: str, name: str) -> None:
    body = (f'<?xml version="1.0" encoding="utf-8"?><c:mkcalendar xmlns:d="DAV:" '
            f'xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop><d:displayname>{name}'
            '</d:displayname></d:prop></d:set></c:mkcalendar>').encode()
    made = fetch(server.base, path, "MKCALENDAR", {**server.auth("alice"),
                                                    "Content-Type": "application/xml"}, body)
    assert made.status == 201, made.status


@pytest.mark.parametrize("form", ["root", "principal"])
def test_first_sync_of_a_new_calendar_costs_discovery_mkcalendar_and_the_puts(server, rig, form):
    url = server.base + ("/" if form == "root" else principal(server))
    report = rig.sync(text({"m": (url, "Klash M")}))
    assert report.ok, [r.error for r in report.results]
    rec = server.recorder
    discovery = DISCOVERY[(server.kind, form)]
    assert discovery <= 3
    assert rec.methods() == {"PROPFIND": discovery, "MKCALENDAR": 1, "PUT": EVENTS}, rec.requests
    assert report.results[0].requests == rec.count() == discovery + 1 + EVENTS
    # Later passes start at the collection: one request.
    rec.reset()
    again = rig.sync(text({"m": (url, "Klash M")}))
    assert again.ok
    assert rec.requests == [("PROPFIND", rec.requests[0][1])]
    assert again.results[0].requests == 1


@pytest.mark.parametrize("form", ["root", "principal", "collection"])
def test_first_sync_of_an_existing_calendar_costs_discovery_one_listing_and_the_puts(server, rig, form):
    collection = home(server) + "mine/"
    mkcalendar(server, collection, "Klash M")
    server.recorder.reset()
    url = server.base + {"root": "/", "principal": principal(server), "collection": collection}[form]
    report = rig.sync(text({"m": (url, "Klash M")}))
    assert report.ok, [r.error for r in report.results]
    rec = server.recorder
    # Discovery, then the listing; the calendar's own URL is both in one request.
    propfinds = 1 if form == "collection" else DISCOVERY[(server.kind, form)] + 1
    assert rec.methods() == {"PROPFIND": propfinds, "PUT": EVENTS}, rec.requests
    assert all(path.startswith(collection) for method, path in rec.requests if method == "PUT")
    assert report.results[0].requests == rec.count()
    rec.reset()
    again = rig.sync(text({"m": (url, "Klash M")}))
    assert again.ok
    assert rec.methods() == {"PROPFIND": 1}
    assert again.results[0].requests == 1


def test_a_second_calendar_of_the_same_account_starts_at_the_remembered_home(server, rig):
    url = server.base + "/"
    assert rig.sync(text({"a": (url, "Klash A")})).ok
    server.recorder.reset()
    report = rig.sync(text({"a": (url, "Klash A"), "b": (url, "Klash B")}))
    assert report.ok, [r.error for r in report.results]
    b = next(r for r in report.results if r.mentor == "b")
    # Home listing, MKCALENDAR, the PUTs: the root and the principal are not asked again.
    assert b.requests == 1 + 1 + EVENTS
    assert server.recorder.count(methods={"PROPFIND"}) == 1 + 1  # a's listing, b's home listing


def test_connections_are_reused_across_calendars_and_passes(tmp_path):
    server = start_radicale(tmp_path / "radicale")
    proxy = TcpProxy(server.port)
    rig = Rig(tmp_path, sync_workers=4, sync_per_host=2)
    try:
        mentors = {f"m{i:02d}": (f"{proxy.base}/alice/", f"Klash {i}") for i in range(10)}
        first = rig.sync(text(mentors, events=2))
        assert first.ok, [r.error for r in first.results]
        assert sum(r.requests for r in first.results) == server.recorder.count() >= 10 * 4
        # (This Radicale, under waitress, closes the connection after each 201: those
        # writes need new connections, as the server asked.)
        server.recorder.reset()
        opened = proxy.accepted
        assert rig.sync(text(mentors, events=2)).ok  # no-op: 10 listings
        assert server.recorder.count() == 10
        assert proxy.accepted - opened <= 2, proxy.accepted - opened  # the pool's size
        opened = proxy.accepted
        assert rig.sync(text(mentors, events=2)).ok  # the next pass reuses them all
        assert proxy.accepted == opened
    finally:
        rig.close()
        proxy.close()
        server.stop()


def test_a_server_that_closes_every_connection_is_handled(tmp_path):
    # Radicale under the standard library's HTTP/1.0 WSGI server, which closes the
    # connection after every response (waitress will not let an app ask for that).
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Threading(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    radicale = start_radicale(tmp_path / "radicale")
    radicale.stop()
    closing = make_server("127.0.0.1", 0, radicale.recorder, server_class=Threading, handler_class=Quiet)
    threading.Thread(target=closing.serve_forever, daemon=True).start()
    proxy = TcpProxy(closing.server_port)
    rig = Rig(tmp_path, sync_workers=4, sync_per_host=2)
    try:
        mentors = {f"m{i}": (f"{proxy.base}/alice/", f"Klash {i}") for i in range(4)}
        for _ in range(2):
            report = rig.sync(text(mentors, events=2))
            assert report.ok, [r.error for r in report.results]
        # One connection per request: none was reused after the server closed it.
        assert proxy.accepted == radicale.recorder.count() == sum(r.requests for r in report.results) + 4 * 4
    finally:
        rig.close()
        proxy.close()
        closing.shutdown()
        closing.server_close()


# ----------------------------------------------------------------- errors


def _error(rig: Rig, url: str) -> str:
    report = rig.sync(text({"m": (url, "Klash")}, events=1))
    (result,) = report.results
    assert not result.ok
    assert "\n" not in result.error
    return result.error


def test_a_closed_port_is_connection_refused(rig):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    error = _error(rig, f"http://127.0.0.1:{port}/dav/")
    assert "connection refused" in error
    assert f"127.0.0.1:{port}" in error


def test_a_listener_that_never_answers_is_timed_out(tmp_path):
    rig = Rig(tmp_path, request_timeout=0.5)
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepted by the kernel, never read
        error = _error(rig, f"http://127.0.0.1:{listener.getsockname()[1]}/dav/")
    rig.close()
    assert "timed out" in error


@pytest.mark.parametrize("status", ["301 Moved Permanently", "307 Temporary Redirect"])
def test_a_redirect_is_reported_with_its_location_and_not_followed(rig, status):
    seen: list[str] = []

    def app(environ, start_response):
        seen.append(environ["PATH_INFO"])
        start_response(status, [("Location", "https://elsewhere.example/dav/"),
                                ("Content-Length", "0")])
        return [b""]

    http = create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=serve, args=(http,), daemon=True)
    thread.start()
    try:
        error = _error(rig, f"http://127.0.0.1:{http.effective_port}/dav/")
    finally:
        shutdown(http, thread)
    assert "redirected to https://elsewhere.example/dav/" in error
    assert seen == ["/dav/"]
    assert PASSWORDS["alice"] not in error


def test_connections_the_server_closed_while_idle_are_replaced(tmp_path):
    """A server that drops idle keep-alive connections after a second: the next pass works."""
    import time

    radicale = start_radicale(tmp_path / "radicale")
    radicale.stop()
    http = create_server(radicale.recorder, host="127.0.0.1", port=0, threads=4, channel_timeout=1,
                         cleanup_interval=1)
    thread = threading.Thread(target=serve, args=(http,), daemon=True)
    thread.start()
    proxy = TcpProxy(http.effective_port)
    rig = Rig(tmp_path, sync_workers=2, sync_per_host=2)
    try:
        mentors = {f"m{i}": (f"{proxy.base}/alice/", f"Klash {i}") for i in range(4)}
        assert rig.sync(text(mentors, events=1)).ok
        radicale.recorder.reset()
        opened = proxy.accepted
        time.sleep(2.5)  # the server closes the pooled connections meanwhile
        report = rig.sync(text(mentors, events=1))
        assert report.ok, [r.error for r in report.results]
        assert sum(r.requests for r in report.results) == radicale.recorder.count() == 4
        assert proxy.accepted > opened  # new connections replaced the closed ones
    finally:
        rig.close()
        proxy.close()
        shutdown(http, thread)
