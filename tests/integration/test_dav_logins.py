"""Wrong passwords on /dav/ cost the attacker, not the mentors (issue 18, item 6).

Through the real server (waitress + our app + the embedded Radicale) on a free loopback
port: a malformed Authorization header is 400 or 401, never a 500; a client that fails
too often gets 429 with Retry-After at once; and while many clients send wrong passwords,
the feed and /healthz are answered and no worker thread sleeps. Each client has an
address of its own: all of 127.0.0.0/8 is loopback, so a connection can come from
127.0.x.y, as distinct clients' would.
"""

from __future__ import annotations

import base64
import http.client
import linecache
import socket
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from klash_sync.embedded.logins import BURST
from klash_sync.embedded.mount import SERVICE_USER, Embedded
from klash_sync.programme.load import load
from klash_sync.service.publish import publish
from klash_sync.state.store import Store
from klash_sync.status import Live
from tests.fixtures.common import SHIPPED, fetch

MILJA = "/dav/milja-kopsi/"  # her principal: it exists before any sync


def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


# (name, raw Authorization value, the answer expected)
MALFORMED: list[tuple[str, bytes, int]] = [
    ("not base64", b"Basic !!!", 400),
    ("bare Basic", b"Basic", 400),
    ("Basic and spaces", b"Basic    ", 400),
    ("no colon", b"Basic " + b64(b"milja-kopsi"), 400),
    ("empty user", b"Basic " + b64(b":secret"), 400),
    ("decodes to non-UTF-8", b"Basic " + b64(b"\xff\xfe:\xfd"), 400),
    ("raw non-UTF-8 bytes", b"Basic \xff\xfe\xfd", 400),
    ("bad padding", b"Basic dXNlcg", 400),
    ("only padding", b"Basic ====", 400),
    ("spaces inside", b"Basic a b c", 400),
    ("two credentials", b"Basic " + b64(b"a:b") + b", Basic " + b64(b"c:d"), 400),
    ("control characters", b"Basic " + b64(b"milja-kopsi:pa\x00ss"), 400),
    ("huge value", b"Basic " + b"QUFB" * 3000, 400),
    ("empty value", b"", 401),
    ("Bearer", b"Bearer x", 401),
    ("Digest", b'Digest username="milja-kopsi", realm="x", nonce="y"', 401),
    ("NTLM", b"NTLM TlRMTVNTUAABAAAAB4IIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 401),
    ("password over bcrypt's 72 bytes", b"Basic " + b64(b"milja-kopsi:" + b"p" * 100), 401),
    ("unknown user", b"Basic " + b64(b"nobody:secret"), 401),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from klash_sync.settings import Settings
    from klash_sync.web.app import App
    from klash_sync.web.server import bind, serve, shutdown

    tmp = tmp_path_factory.mktemp("logins")
    live = Live()
    settings = Settings(host="127.0.0.1", port=0, state_dir=tmp, _env_file=None)  # type: ignore[call-arg]
    embedded = Embedded(tmp)
    embedded.ensure_home("milja-kopsi")
    password = embedded.set_password("milja-kopsi")
    app = App(live, settings, dav=embedded.mounted, health=lambda: (200, b'{"status": "ok"}'))
    server, settings = bind(app, settings)
    thread = threading.Thread(target=serve, args=(server,), daemon=True)
    thread.start()
    store = Store(tmp / "s.sqlite3")
    live.set_snapshot(publish(load(SHIPPED), store, now=datetime(2026, 1, 1, tzinfo=UTC),
                              base_url=settings.base_url))
    yield server, password, embedded
    shutdown(server, thread)
    store.close()


def raw_request(port: int, source: str, authorization: bytes) -> tuple[int, bytes]:
    """One PROPFIND with the Authorization value as raw bytes, from ``source``."""
    data = (b"PROPFIND " + MILJA.encode() + b" HTTP/1.1\r\nHost: test\r\nDepth: 0\r\n"
            b"Connection: close\r\nAuthorization: " + authorization + b"\r\n\r\n")
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as conn:
        conn.sendall(data)
        for _ in range(1000):  # bounded: a few answers' worth of chunks
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    answer = b"".join(chunks)
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0, answer


def propfind(port: int, source: str, user: str, password: str,
             conn: http.client.HTTPConnection | None = None) -> http.client.HTTPResponse:
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    conn.request("PROPFIND", MILJA, headers={"Authorization": "Basic " + token, "Depth": "0"})
    resp = conn.getresponse()
    resp.read()
    return resp


def test_there_are_at_least_thirteen_malformed_headers():
    assert len(MALFORMED) >= 13


@pytest.mark.parametrize(("n", "name", "value", "expected"),
                         [(n, *m) for n, m in enumerate(MALFORMED)], ids=[m[0] for m in MALFORMED])
def test_a_malformed_authorization_header_is_400_or_401_never_500(site, n, name, value, expected):
    server, _, _ = site
    status, answer = raw_request(server.effective_port, f"127.0.2.{n + 1}", value)
    assert status == expected, (name, answer[:300])
    assert b"traceback" not in answer.lower()
    if status == 401:
        assert b"www-authenticate: basic" in answer.lower()
    assert fetch(f"http://127.0.0.1:{server.effective_port}", "/feeds/programme.ics").status == 200


def test_a_client_that_fails_too_often_gets_429_at_once_and_others_do_not(site):
    server, password, _ = site
    port = server.effective_port
    # Logged in before: remembered, so a guesser at the same address does not lock it out.
    assert propfind(port, "127.0.3.1", "milja-kopsi", password).status == 207
    for n in range(BURST):
        assert propfind(port, "127.0.3.1", "milja-kopsi", f"wrong-{n}").status == 401, n
    over = propfind(port, "127.0.3.1", "milja-kopsi", "wrong-again")
    assert over.status == 429
    assert int(over.getheader("Retry-After", "0")) >= 1
    assert propfind(port, "127.0.3.1", "nobody", "guess").status == 429
    assert propfind(port, "127.0.3.1", "milja-kopsi", password).status == 207
    # Another address has its own budget.
    assert propfind(port, "127.0.3.2", "milja-kopsi", "wrong").status == 401
    assert propfind(port, "127.0.3.2", "milja-kopsi", password).status == 207


def _sleeping_workers() -> list[str]:
    """Server worker threads whose innermost Python frame is a ``sleep(`` call."""
    frames = sys._current_frames()
    found = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or -1)
        if not thread.name.startswith("waitress-") or frame is None:
            continue
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
        if "sleep(" in line:
            found.append(f"{thread.name}: {frame.f_code.co_filename}:{frame.f_lineno} {line}")
    return found


def test_no_request_waits_on_a_sleeping_login(site):
    """16 clients send wrong passwords as fast as they are answered; meanwhile the feed and
    /healthz are answered, and no worker thread is ever found asleep."""
    server, _, embedded = site
    port = server.effective_port
    stop = threading.Event()
    answered = threading.Event()
    statuses: list[Counter[int]] = [Counter() for _ in range(16)]
    sleeping: list[str] = []

    def attacker(n: int) -> None:
        source = (f"127.0.4.{n + 1}", 0)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=source)
        deadline = time.monotonic() + 60
        for k in range(400):  # bounded in count and time
            if stop.is_set() or time.monotonic() > deadline:
                break
            try:
                resp = propfind(port, "", "milja-kopsi", f"guess-{k}", conn)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=source)
                continue
            statuses[n][resp.status] += 1
            answered.set()
        conn.close()

    def watcher() -> None:
        for _ in range(3000):  # bounded; ends with the attack
            if stop.is_set():
                break
            sleeping.extend(_sleeping_workers())
            time.sleep(0.002)

    threads = [threading.Thread(target=attacker, args=(n,)) for n in range(16)]
    threads.append(threading.Thread(target=watcher))
    for t in threads:
        t.start()
    try:
        assert answered.wait(30)
        service = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(3):
            assert fetch(f"http://127.0.0.1:{port}", "/feeds/programme.ics", timeout=30).status == 200
            assert fetch(f"http://127.0.0.1:{port}", "/healthz", timeout=30).status == 200
            # The service's own syncer is never refused for want of a password check.
            assert propfind(port, "", SERVICE_USER, embedded.service_password, service).status == 207
        service.close()
        still_attacking = sum(t.is_alive() for t in threads[:-1])
    finally:
        stop.set()
        for t in threads:
            t.join(70)
    assert still_attacking == 16  # the feed and /healthz were answered during the attack
    assert not sleeping, sleeping[:5]
    for n, counted in enumerate(statuses):
        assert set(counted) <= {401, 429, 503}, (n, counted)  # 503: another check was running
        assert counted[401] <= BURST + 1, (n, counted)  # the rest cost no bcrypt


def test_while_a_password_is_being_checked_another_check_is_503_at_once(site):
    """One bcrypt check at a time: the next one is answered 503 + Retry-After at once, not
    queued on a worker, and not counted against its client; logins that need no check pass."""
    server, password, embedded = site
    port = server.effective_port
    assert propfind(port, "127.0.6.1", "milja-kopsi", password).status == 207  # remembered now
    embedded.logins._checking.acquire()  # as if a check were running
    try:
        busy = propfind(port, "127.0.6.2", "milja-kopsi", "guess")
        assert busy.status == 503
        assert busy.getheader("Retry-After") == "1"
        assert propfind(port, "127.0.6.1", "milja-kopsi", password).status == 207
        assert propfind(port, "127.0.6.2", SERVICE_USER, embedded.service_password).status == 207
    finally:
        embedded.logins._checking.release()
    for n in range(BURST):  # the 503 cost the client none of its budget
        assert propfind(port, "127.0.6.2", "milja-kopsi", f"guess-{n}").status == 401, n


def test_an_unreadable_htpasswd_refuses_mentors_but_not_the_service(serve_live, tmp_path):
    """A damaged logins file is one warning and 401s for mentors, not a 500 per request;
    the service's own login still works, so calendars are still written."""
    embedded = Embedded(tmp_path / "state")
    embedded.ensure_home("milja-kopsi")
    password = embedded.set_password("milja-kopsi")
    running = serve_live(Live())
    running.app.dav = embedded.mounted
    port = int(running.url.rsplit(":", 1)[1])
    embedded.htpasswd.write_bytes(b"milja-kopsi:\xff\xfe not UTF-8\n")
    assert propfind(port, "127.0.7.1", "milja-kopsi", password).status == 401
    assert propfind(port, "127.0.7.1", SERVICE_USER, embedded.service_password).status == 207
