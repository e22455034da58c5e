"""The embedded CalDAV server: always authenticated, mentors read only their own calendar."""

from __future__ import annotations

import base64

import pytest

from klash_sync.embedded.mount import SERVICE_USER, Embedded
from klash_sync.status import Live
from tests.fixtures.common import fetch
from tests.fixtures.servers import foreign_event
from tests.fixtures.site import synced_embedded_site


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def dav(serve_live, tmp_path):
    synced = synced_embedded_site(serve_live, tmp_path)
    site, embedded, store = synced.running, synced.embedded, synced.store
    passwords = {m: embedded.set_password(m) for m in ("milja-kopsi", "ulla-nord")}
    yield site, embedded, passwords
    store.close()


MILJA = "/dav/milja-kopsi/klash/"


def test_without_credentials_401(dav):
    site, _, _ = dav
    for method in ("GET", "PROPFIND", "PUT", "DELETE"):
        r = fetch(site.url, MILJA, method)
        assert r.status == 401, method
        assert "basic" in r.headers.get("www-authenticate", "").lower()
    assert fetch(site.url, "/dav/", "PROPFIND").status == 401


def test_wrong_password_401(dav):
    site, _, passwords = dav
    wrong = basic("milja-kopsi", passwords["milja-kopsi"] + "x")
    assert fetch(site.url, MILJA, "PROPFIND", {**wrong, "Depth": "0"}).status == 401
    assert fetch(site.url, MILJA, "PROPFIND", {**basic(SERVICE_USER, "guess"), "Depth": "0"}).status == 401


def test_mentor_reads_own_calendar_only(dav):
    site, _, passwords = dav
    milja = basic("milja-kopsi", passwords["milja-kopsi"])
    own = fetch(site.url, MILJA, "PROPFIND", {**milja, "Depth": "1"})
    assert own.status == 207
    assert b"joensuu-2019-10-01.ics" in own.body
    event = fetch(site.url, MILJA + "joensuu-2019-10-01.ics", headers=milja)
    assert event.status == 200
    assert b"UID:joensuu-2019-10-01@" in event.body
    # Another mentor's calendar: 403 with Milja's credentials.
    other = fetch(site.url, "/dav/ulla-nord/klash/", "PROPFIND", {**milja, "Depth": "1"})
    assert other.status == 403
    assert fetch(site.url, "/dav/ulla-nord/klash/vantaa-2019-10-08.ics", headers=milja).status == 403


def test_mentor_cannot_write_even_to_own_calendar(dav):
    site, _, passwords = dav
    milja = basic("milja-kopsi", passwords["milja-kopsi"])
    put = fetch(site.url, MILJA + "mine.ics", "PUT", {**milja, "Content-Type": "text/calendar"},
                foreign_event())
    assert put.status == 403
    assert fetch(site.url, MILJA + "joensuu-2019-10-01.ics", "DELETE", milja).status == 403
    assert fetch(site.url, MILJA, "DELETE", milja).status == 403
    assert fetch(site.url, "/dav/milja-kopsi/new/", "MKCALENDAR", milja).status == 403
    # The service account can write.
    service = basic(SERVICE_USER, dav[1].service_password)
    assert fetch(site.url, MILJA + "probe.ics", "PUT", {**service, "Content-Type": "text/calendar"},
                 foreign_event()).status in (201, 204)


def test_passwords_are_stored_only_as_bcrypt_hashes(dav):
    _, embedded, passwords = dav
    text = embedded.htpasswd.read_text()
    for user, password in passwords.items():
        line = next(entry for entry in text.splitlines() if entry.startswith(user + ":"))
        assert line.split(":", 1)[1].startswith("$2b$")
        assert password not in text
    assert embedded.service_password not in text
    assert oct(embedded.htpasswd.stat().st_mode & 0o777) == "0o600"
    assert oct((embedded.root / "service.password").stat().st_mode & 0o777) == "0o600"


def test_accounts_command_shows_each_password_once_and_reset_replaces_it(tmp_path, serve_live):
    import re

    from tests.fixtures.common import run_cli

    env = {"KLASH_STATE_DIR": str(tmp_path / "state"), "KLASH_PUBLIC_URL": "https://klash.example.fi"}
    first = run_cli("accounts", env=env)
    assert first.code == 0, first.err
    assert ("  Milja Köpsi\n    server    https://klash.example.fi/dav/\n    user      milja-kopsi\n"
            in first.out)
    assert "    calendar  https://klash.example.fi/dav/milja-kopsi/klash/\n" in first.out
    shown = dict(re.findall(r"user +(\S+)\n +password +(\S+)   \(new", first.out))
    assert len(shown) == 8
    again = run_cli("accounts", env=env)
    assert "password  set earlier" in again.out
    assert shown["milja-kopsi"] not in again.out
    reset = run_cli("accounts", "--reset", "milja-kopsi", env=env)
    new = dict(re.findall(r"user +(\S+)\n +password +(\S+)   \(new", reset.out))
    assert list(new) == ["milja-kopsi"]
    assert new["milja-kopsi"] != shown["milja-kopsi"]
    # The new password logs Milja in (her principal exists before any sync); the old one
    # is refused.
    embedded = Embedded(tmp_path / "state")
    live = Live()
    site = serve_live(live)
    site.app.dav = embedded.mounted
    assert fetch(site.url, "/dav/milja-kopsi/", "PROPFIND",
                 {**basic("milja-kopsi", new["milja-kopsi"]), "Depth": "0"}).status == 207
    assert fetch(site.url, "/dav/milja-kopsi/", "PROPFIND",
                 {**basic("milja-kopsi", shown["milja-kopsi"]), "Depth": "0"}).status == 401
    bad = run_cli("accounts", "--reset", "nobody", env=env)
    assert bad.code == 2
    assert "not a mentor" in bad.err
