"""A mentor adds the embedded calendar to an app from the server address and their login alone.

Driven the way calendar apps do it (RFC 6764 and RFC 4791 section 6.2): the python
``caldav`` client and vdirsyncer, given only the address and the login, and a raw
PROPFIND walk well-known → principal → calendar home → calendar that checks each step.
The server is ours, on a free loopback port, with the real Radicale mounted at /dav/.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lxml import etree

from klash_sync.deliver.caldav.sync import Syncer, desired_for
from klash_sync.embedded.mount import SERVICE_USER, Embedded
from klash_sync.programme.load import load
from klash_sync.service.publish import publish
from klash_sync.settings import Settings
from klash_sync.state.store import Store
from klash_sync.status import Live
from tests.fixtures.common import SHIPPED, fetch
from tests.fixtures.servers import foreign_event
from tests.fixtures.site import synced_embedded_site

NS = {"d": "DAV:", "c": "urn:ietf:params:xml:ns:caldav"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def propfind(url: str, path: str, auth: dict[str, str], props: str, depth: str = "0"):
    body = (f'<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:" '
            f'xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop>{props}</d:prop></d:propfind>').encode()
    r = fetch(url, path, "PROPFIND", {**auth, "Depth": depth,
                                      "Content-Type": "application/xml; charset=utf-8"}, body)
    return r, (etree.fromstring(r.body) if r.status == 207 else None)


class Site:
    def __init__(self, url: str, embedded: Embedded, passwords: dict[str, str], snapshot) -> None:
        self.url, self.embedded, self.passwords, self.snapshot = url, embedded, passwords, snapshot

    def login(self, mentor: str) -> dict[str, str]:
        return basic(mentor, self.passwords[mentor])

    def uids(self, mentor: str) -> set[str]:
        return set(desired_for(self.snapshot, mentor))


@pytest.fixture
def site(serve_live, tmp_path):
    """Our server with the embedded calendars synced, and logins for two mentors."""
    synced = synced_embedded_site(serve_live, tmp_path)
    running, embedded, snapshot, store = synced.running, synced.embedded, synced.snapshot, synced.store
    passwords = {m: embedded.set_password(m) for m in ("milja-kopsi", "ulla-nord")}
    yield Site(running.url, embedded, passwords, snapshot)
    store.close()


# ------------------------------------------------------------------- well-known


@pytest.mark.parametrize("method", ["GET", "HEAD", "PROPFIND"])
def test_well_known_caldav_redirects_to_the_dav_root(site, method):
    for path in ("/.well-known/caldav", "/.well-known/caldav/"):
        r = fetch(site.url, path, method)
        assert r.status == 301, (path, r.status)
        assert r.headers["location"] == "/dav/"
    # PROPFIND of the server address itself, what apps try first, goes the same way ...
    r = fetch(site.url, "/", "PROPFIND", {"Depth": "0"})
    assert (r.status, r.headers["location"]) == (301, "/dav/")
    # ... while a browser still gets the page there.
    assert fetch(site.url, "/").status == 200


def test_well_known_respects_the_public_urls_path(serve_live, tmp_path):
    running = serve_live(Live(), public_url="https://kunnat.example.fi/klash")
    running.app.dav = Embedded(tmp_path / "state").mounted
    for method in ("GET", "PROPFIND"):
        r = fetch(running.url, "/.well-known/caldav", method)
        assert (r.status, r.headers["location"]) == (301, "/klash/dav/")


def test_no_well_known_redirect_without_the_embedded_server(serve_live):
    running = serve_live(Live(), embedded_caldav=False)
    assert fetch(running.url, "/.well-known/caldav").status in (404, 503)
    assert fetch(running.url, "/", "PROPFIND").status == 405


# ------------------------------------------------------------ the PROPFIND walk


def test_raw_propfind_walk_from_well_known_to_the_events(site):
    milja = site.login("milja-kopsi")
    # 1. well-known -> the DAV root
    root = fetch(site.url, "/.well-known/caldav", "PROPFIND").headers["location"]
    assert root == "/dav/"
    # 2. the root names the mentor's principal
    r, tree = propfind(site.url, root, milja, "<d:current-user-principal/>")
    assert r.status == 207, r.body
    principal = tree.findtext(".//d:current-user-principal/d:href", namespaces=NS)
    assert principal == Embedded.principal_path("milja-kopsi") == "/dav/milja-kopsi/"
    # 3. the principal exists, answers PROPFIND, and names its calendar home
    r, tree = propfind(site.url, principal, milja,
                       "<d:resourcetype/><c:calendar-home-set/><d:current-user-principal/>")
    assert r.status == 207, r.body
    assert tree.find(".//d:response/d:propstat/d:prop/d:resourcetype/d:principal", NS) is not None
    home = tree.findtext(".//c:calendar-home-set/d:href", namespaces=NS)
    assert home == "/dav/milja-kopsi/"
    # 4. the home holds exactly one calendar: hers
    r, tree = propfind(site.url, home, milja, "<d:resourcetype/><d:displayname/>", depth="1")
    assert r.status == 207, r.body
    calendars = [resp.findtext("d:href", namespaces=NS) for resp in tree.findall("d:response", NS)
                 if resp.find(".//d:resourcetype/c:calendar", NS) is not None]
    assert calendars == ["/dav/milja-kopsi/klash/"]
    # 5. the calendar lists her events, and each one reads
    r, tree = propfind(site.url, calendars[0], milja, "<d:getetag/>", depth="1")
    assert r.status == 207
    hrefs = [h.text for h in tree.findall("d:response/d:href", NS) if not h.text.endswith("/")]
    uids = set()
    for href in hrefs:
        event = fetch(site.url, href, headers=milja)
        assert event.status == 200
        uids.add(re.search(rb"^UID:(\S+)", event.body, re.M).group(1).decode())
    assert uids == site.uids("milja-kopsi")
    assert len(hrefs) == len(uids)


def test_the_root_shows_a_mentor_only_their_own_principal(site):
    r, tree = propfind(site.url, "/dav/", site.login("milja-kopsi"), "<d:resourcetype/>", depth="1")
    assert r.status == 207
    hrefs = sorted(h.text for h in tree.findall("d:response/d:href", NS))
    assert hrefs == ["/dav/", "/dav/milja-kopsi/"]


# ----------------------------------------------------------------- real clients


@pytest.mark.parametrize("address", ["/", "/dav/"])
def test_caldav_client_finds_the_calendar_from_the_server_address(site, address):
    import caldav

    with caldav.DAVClient(url=site.url + address, username="milja-kopsi",
                          password=site.passwords["milja-kopsi"]) as client:
        calendars = client.principal().calendars()
        assert [urlsplit(str(c.url)).path for c in calendars] == ["/dav/milja-kopsi/klash/"]
        events = calendars[0].events()
        uids = {e.icalendar_component["UID"] for e in events}
    assert uids == site.uids("milja-kopsi")
    assert len(events) == len(uids)


def test_vdirsyncer_discovers_and_reads_the_calendar_from_the_server_root(site, tmp_path):
    exe = shutil.which("vdirsyncer", path=str(Path(sys.executable).parent)) or shutil.which("vdirsyncer")
    assert exe, "vdirsyncer is in the test extras: pip install -e '.[test]'"
    local = tmp_path / "local"
    local.mkdir()
    config = tmp_path / "vdirsyncer.conf"
    config.write_text(
        f'[general]\nstatus_path = "{tmp_path}/status/"\n\n'
        '[pair klash]\na = "remote"\nb = "local"\ncollections = ["from a"]\n\n'
        f'[storage remote]\ntype = "caldav"\nurl = "{site.url}/"\nusername = "milja-kopsi"\n'
        f'password = "{site.passwords["milja-kopsi"]}"\nread_only = true\n\n'
        f'[storage local]\ntype = "filesystem"\npath = "{local}/"\nfileext = ".ics"\n'
    )

    def vdirsyncer(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([exe, "-c", str(config), *args], capture_output=True, text=True,
                              timeout=60, input="y\n" * 10)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    found = vdirsyncer("discover", "klash")
    assert re.search(r"klash", found.stdout + found.stderr)
    vdirsyncer("sync", "klash")
    # Exactly one calendar was discovered (hers), with all her events and nothing else.
    assert [p.name for p in local.iterdir()] == ["klash"]
    bodies = [p.read_bytes() for p in (local / "klash").glob("*.ics")]
    uids = {re.search(rb"^UID:(\S+)", b, re.M).group(1).decode() for b in bodies}
    assert uids == site.uids("milja-kopsi")
    assert len(bodies) == len(uids)


# ------------------------------------------------------------------------ rights


def test_a_mentor_reads_nothing_else_and_writes_nothing(site):
    milja = site.login("milja-kopsi")
    for path in ("/dav/ulla-nord/", "/dav/ulla-nord/klash/", "/dav/klash.service/"):
        r, _ = propfind(site.url, path, milja, "<d:resourcetype/>", depth="1")
        assert r.status == 403, path
    assert fetch(site.url, "/dav/ulla-nord/klash/vantaa-2019-10-08.ics", headers=milja).status == 403
    ics = {**milja, "Content-Type": "text/calendar"}
    # (tests/integration/test_embedded_auth.py tries more writes to her calendar)
    for path in ("/dav/milja-kopsi/klash/mine.ics", "/dav/milja-kopsi/mine.ics"):
        assert fetch(site.url, path, "PUT", ics, foreign_event()).status == 403, path
    assert fetch(site.url, "/dav/milja-kopsi/", "DELETE", milja).status == 403
    assert fetch(site.url, "/dav/milja-kopsi/klash/", "PROPPATCH", milja,
                 b'<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:"><d:set><d:prop>'
                 b"<d:displayname>x</d:displayname></d:prop></d:set></d:propertyupdate>").status == 403
    # The service account keeps writing.
    service = basic(SERVICE_USER, site.embedded.service_password)
    assert fetch(site.url, "/dav/milja-kopsi/klash/probe.ics", "PUT",
                 {**service, "Content-Type": "text/calendar"}, foreign_event()).status in (201, 204)


def test_addresses_printed_by_older_releases_are_redirected(site):
    milja = site.login("milja-kopsi")
    r = fetch(site.url, "/dav/klash.service/milja-kopsi/joensuu-2019-10-01.ics", headers=milja)
    assert (r.status, r.headers["location"]) == (301, "/dav/milja-kopsi/klash/joensuu-2019-10-01.ics")
    r = fetch(site.url, "/dav/klash.service/milja-kopsi/", "PROPFIND", {**milja, "Depth": "1"})
    assert (r.status, r.headers["location"]) == (308, "/dav/milja-kopsi/klash/")
    # Writes are not redirected: they meet the rights as they are.
    assert fetch(site.url, "/dav/klash.service/milja-kopsi/x.ics", "PUT",
                 {**milja, "Content-Type": "text/calendar"}, foreign_event()).status == 403


def test_a_mentors_home_exists_before_their_first_sync(tmp_path, serve_live):
    embedded = Embedded(tmp_path / "state")
    password = embedded.set_password("milja-kopsi")
    embedded.ensure_home("milja-kopsi")
    running = serve_live(Live())
    running.app.dav = embedded.mounted
    r, tree = propfind(running.url, "/dav/milja-kopsi/", basic("milja-kopsi", password),
                       "<c:calendar-home-set/>")
    assert r.status == 207
    assert tree.findtext(".//c:calendar-home-set/d:href", namespaces=NS) == "/dav/milja-kopsi/"
    with pytest.raises(ValueError, match="not a mentor id"):
        embedded.ensure_home("../etc")


# ------------------------------------------------------------------- the page


def test_the_mentor_page_shows_what_to_type_into_the_app(serve_live, tmp_path):
    from tests.fixtures.common import programme_text

    programme = tmp_path / "p.toml"
    programme.write_text(programme_text().replace(
        'name = "Ulla Nord"\n',
        'name = "Ulla Nord"\n[mentors.caldav]\nurl = "https://cal.example.fi/"\n'
        'username = "ulla"\npassword_env = "PW"\n'), encoding="utf-8")
    live = Live()
    running = serve_live(live, public_url="https://klash.example.fi")
    running.app.dav = Embedded(tmp_path / "state").mounted
    store = Store(tmp_path / "s.sqlite3")
    live.set_snapshot(publish(load(programme), store, now=datetime(2026, 1, 1, tzinfo=UTC),
                              base_url="https://klash.example.fi"))
    store.close()
    for lang, label in (("fi", "Palvelimen osoite"), ("en", "Server address")):
        page = fetch(running.url, f"/mentors/milja-kopsi?lang={lang}").body.decode()
        assert label in page
        assert "https://klash.example.fi/dav/</span>" in page
        assert '<span class="url">milja-kopsi</span>' in page
        assert "https://klash.example.fi/dav/milja-kopsi/klash/</span>" in page
    # A mentor with their own CalDAV server has no embedded calendar to add.
    assert "/dav/" not in fetch(running.url, "/mentors/ulla-nord?lang=en").body.decode()
    # Nor is there one to add where no CalDAV server is mounted (`klash-sync serve`).
    running.app.dav = None
    assert "/dav/" not in fetch(running.url, "/mentors/milja-kopsi?lang=en").body.decode()


# ------------------------------------------------------- behind a proxy at a path


@pytest.fixture
def nginx(tmp_path):
    """Debian's nginx on a free port; ``start(upstream_port)`` proxies /klash/ to our server."""
    import os
    import socket
    import time

    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(exe).exists(), "Debian's nginx is needed (.ci/run installs it)"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []

    def start(upstream: int) -> str:
        conf = tmp_path / "nginx.conf"
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "".join(f"  {kind}_temp_path {tmp_path}/nginx-{kind};\n"
                       for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf.write_text(
            f"{user}worker_processes 1;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/nginx-error.log;\n"
            "events { worker_connections 64; }\n"
            f"http {{\n  access_log off;\n{temp}"
            f"  server {{\n    listen 127.0.0.1:{port};\n"
            # The usual sub-path set-up: the prefix is stripped on the way in.
            f"    location /klash/ {{ proxy_pass http://127.0.0.1:{upstream}/; "
            "proxy_set_header Host $http_host; }\n  }\n}\n")
        procs.append(subprocess.Popen([exe, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
                                      stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                fetch(url, "/klash/healthz")
                return url
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)

    start.port = port  # type: ignore[attr-defined]
    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def test_discovery_behind_a_reverse_proxy_at_a_sub_path(serve_live, tmp_path, nginx):
    import caldav

    public = f"http://127.0.0.1:{nginx.port}/klash"
    state = tmp_path / "state"
    embedded = Embedded(state, prefix="/klash")
    store = Store(state / "state.sqlite3")
    live = Live()
    running = serve_live(live, public_url=public)
    running.app.dav = embedded.mounted
    snapshot = publish(load(SHIPPED), store, now=datetime(2026, 1, 1, tzinfo=UTC), base_url=public)
    live.set_snapshot(snapshot)
    settings = Settings(state_dir=state, _env_file=None)  # type: ignore[call-arg]
    report = Syncer(settings, store, embedded=embedded,
                    dav_base=running.url + "/klash").run(snapshot, only={"milja-kopsi"})
    store.close()
    assert report.ok, [r.error for r in report.results]
    password = embedded.set_password("milja-kopsi")
    proxy = nginx(int(urlsplit(running.url).port))

    r = fetch(proxy, "/klash/.well-known/caldav", "PROPFIND")
    assert (r.status, r.headers["location"]) == (301, "/klash/dav/")
    r, tree = propfind(proxy, "/klash/dav/", basic("milja-kopsi", password), "<d:current-user-principal/>")
    assert tree.findtext(".//d:current-user-principal/d:href", namespaces=NS) == "/klash/dav/milja-kopsi/"
    # What the page and `klash-sync accounts` tell the mentor to type: the public address.
    with caldav.DAVClient(url=public + "/", username="milja-kopsi", password=password) as client:
        calendars = client.principal().calendars()
        assert [urlsplit(str(c.url)).path for c in calendars] == ["/klash/dav/milja-kopsi/klash/"]
        uids = {e.icalendar_component["UID"] for e in calendars[0].events()}
    assert uids == set(desired_for(snapshot, "milja-kopsi"))
