"""Answers on the page, through the daemon's real HTTP server on a free port.

The daemon runs in this process on a fake clock (the answers' own times are known);
requests go over HTTP with http.client; `attendance --json`, `feeds rotate` and
`feeds` are the real CLI. A GET of an answer link changes nothing in the state
directory (mail scanners follow links); the form's POST records the answer, which the
CLI, the mentor's private page, the public counts, the organisers' view and feed and
/metrics then show; a wrong or rotated token is 404.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import pytest

from klash_sync.clock import FakeClock
from klash_sync.service.daemon import Daemon
from klash_sync.settings import Settings
from tests.fixtures.common import SWEDISH_ULLA, fetch, programme_text, run_cli
from tests.fixtures.daemon_rig import base_url, settle
from tests.fixtures.invite_helpers import ADDRESSES, header, session, start_invite_daemon, timed

SECRET = "rsvp-test-secret-0123456789"
PASSWORD = "kahvia-vantaalle-42"
T0 = datetime(2026, 9, 1, 9, 30, tzinfo=UTC)
PROGRAMME = programme_text("""
id = "vantaa-1"
title = "Vantaan tilaisuus"
municipality = "Vantaa"
start = 2026-10-08T09:00:00
end = 2026-10-08T11:00:00
mentors = ["milja-kopsi", "ulla-nord"]
""", """
id = "janakkala"
title = "Janakkala"
date = 2026-09-24
mentors = ["milja-kopsi"]
""", header=SWEDISH_ULLA)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def rig(tmp_path: Path):
    path = tmp_path / "programme.toml"
    path.write_text(PROGRAMME, encoding="utf-8")
    settings = Settings(programme=path, state_dir=tmp_path / "state", host="127.0.0.1", port=0,
                        embedded_caldav=False, private_feeds=True, secret=SECRET,
                        organiser_password=PASSWORD, debounce=1.0,
                        _env_file=None)  # type: ignore[call-arg]
    clock = FakeClock(T0)
    daemon = Daemon(settings, clock=clock)
    daemon.start()
    settle(daemon)
    env = {"KLASH_PROGRAMME": str(path), "KLASH_STATE_DIR": str(settings.state_dir),
           "KLASH_SECRET": SECRET, "KLASH_PRIVATE_FEEDS": "true"}
    yield daemon, base_url(daemon), env
    daemon.stop()


def _state_hash(daemon: Daemon) -> str:
    digest = hashlib.sha256()
    for name in ("state.sqlite3", "state.sqlite3-wal"):
        file = daemon.settings.state_dir / name
        digest.update(file.read_bytes() if file.exists() else b"-")
    return digest.hexdigest()


def _private_page(daemon: Daemon, url: str, mentor: str) -> str:
    keys = daemon.app.keys
    assert keys is not None
    page = fetch(url, f"/mentors/{mentor}/{keys.token(mentor)}")
    assert page.status == 200
    return page.body.decode()


def _answer_path(daemon: Daemon, url: str, mentor: str, session: str) -> str:
    """The answer link as the mentor's private page carries it."""
    html = _private_page(daemon, url, mentor)
    found = re.findall(r'href="(/rsvp/[^"?]+)\?answer=accepted"', html)
    paths = [p for p in found if f".{session}." in p]
    assert len(paths) == 1, found
    return paths[0]


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"organiser:{password}".encode()).decode()}


def test_get_changes_nothing_and_post_records_what_attendance_shows(rig):
    daemon, url, env = rig
    path = _answer_path(daemon, url, "ulla-nord", "vantaa-1")
    before = _state_hash(daemon)
    for query in ("", "?answer=declined", "?answer=accepted"):
        page = fetch(url, path + query)
        assert page.status == 200
        html = page.body.decode()
        assert "Vantaan tilaisuus" in html
        assert html.count('type="submit"') == 3  # coming, maybe, not coming
        assert page.headers["content-language"] == "sv"  # Ulla's language
    assert fetch(url, path, method="HEAD").status == 200
    settle(daemon)
    assert _state_hash(daemon) == before  # a link followed by a mail scanner records nothing

    daemon.clock.advance(60)  # type: ignore[attr-defined]
    posted = fetch(url, path, method="POST", body=b"answer=declined", headers=FORM)
    assert posted.status == 200, posted.body
    assert "Ditt svar har sparats: Jag kommer inte" in posted.body.decode()
    assert _state_hash(daemon) != before

    shown = run_cli("attendance", "--json", "--session", "vantaa-1", env=env)
    assert shown.code == 0, shown.err
    mentors = {m["id"]: m for m in json.loads(shown.out)["sessions"][0]["mentors"]}
    sequence = daemon.live.snapshot.revisions["vantaa-1"].sequence
    assert mentors["ulla-nord"] == {
        "id": "ulla-nord", "name": "Ulla Nord", "answer": "declined", "via": "web",
        "at": "2026-09-01T09:31:00+00:00", "comment": "", "for_sequence": sequence}
    assert mentors["milja-kopsi"]["answer"] == "none"
    # The mentor's page says what she answered; a later answer replaces it.
    assert "Vastauksesi: <strong>En tule</strong>" in _private_page(daemon, url, "ulla-nord")
    daemon.clock.advance(60)  # type: ignore[attr-defined]
    again = fetch(url, path, method="POST", body=b"answer=tentative", headers=FORM)
    assert again.status == 200
    assert "Ditt nuvarande svar: <strong>Kanske</strong>" in fetch(url, path).body.decode()



def test_an_answer_while_another_program_holds_the_store_is_refused_whole(rig):
    daemon, url, env = rig
    path = _answer_path(daemon, url, "milja-kopsi", "janakkala")
    other = sqlite3.connect(daemon.settings.state_db, isolation_level=None)  # as a backup tool
    other.execute("BEGIN EXCLUSIVE")
    try:
        refused = fetch(url, path, method="POST", body=b"answer=declined", headers=FORM)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert refused.status == 503
    assert refused.headers["retry-after"] == "5"
    assert "Vastausta ei voitu tallentaa juuri nyt" in refused.body.decode()
    shown = run_cli("attendance", "--json", "--session", "janakkala", env=env)
    assert json.loads(shown.out)["sessions"][0]["mentors"][0]["answer"] == "none"
    assert fetch(url, path, method="POST", body=b"answer=declined", headers=FORM).status == 200
    shown = run_cli("attendance", "--json", "--session", "janakkala", env=env)
    assert json.loads(shown.out)["sessions"][0]["mentors"][0]["answer"] == "declined"

def test_wrong_and_rotated_tokens_are_not_found(rig):
    daemon, url, env = rig
    path = _answer_path(daemon, url, "milja-kopsi", "janakkala")
    assert fetch(url, path).status == 200
    mentor, session, mac = path.removeprefix("/rsvp/").split(".")
    wrong_mac = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for wrong in (f"/rsvp/{mentor}.{session}.{wrong_mac}", f"/rsvp/ulla-nord.{session}.{mac}",
                  f"/rsvp/{mentor}.vantaa-1.{mac}", "/rsvp/", "/rsvp/x", f"{path}.x"):
        assert fetch(url, wrong).status == 404, wrong
        assert fetch(url, wrong, method="POST", body=b"answer=accepted", headers=FORM).status == 404
    # Ulla is not in Janakkala: even a token made for her there opens nothing.
    keys = daemon.app.keys
    assert keys is not None
    assert fetch(url, f"/rsvp/{keys.answer_token('ulla-nord', 'janakkala')}").status == 404

    rotated = run_cli("feeds", "rotate", "milja-kopsi", env=env)
    assert rotated.code == 0, rotated.err
    assert fetch(url, path).status == 404
    assert fetch(url, path, method="POST", body=b"answer=accepted", headers=FORM).status == 404
    new = _answer_path(daemon, url, "milja-kopsi", "janakkala")
    assert new != path
    assert fetch(url, new).status == 200
    # Ulla's links did not change.
    assert fetch(url, _answer_path(daemon, url, "ulla-nord", "vantaa-1")).status == 200


def test_a_form_on_another_site_cannot_answer(rig):
    daemon, url, _ = rig
    path = _answer_path(daemon, url, "milja-kopsi", "vantaa-1")
    before = _state_hash(daemon)
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}):
        refused = fetch(url, path, method="POST", body=b"answer=declined", headers={**FORM, **headers})
        assert refused.status == 403, headers
    assert fetch(url, path, method="POST", body=b"answer=maybe", headers=FORM).status == 400
    assert fetch(url, path, method="PUT", body=b"answer=declined", headers=FORM).status == 405
    assert _state_hash(daemon) == before
    own = {"Origin": url, "Sec-Fetch-Site": "same-origin"}
    assert fetch(url, path, method="POST", body=b"answer=accepted", headers={**FORM, **own}).status == 200


def test_counts_in_public_names_for_organisers_behind_the_password(rig):
    daemon, url, _ = rig
    for mentor, sid, answer in (("milja-kopsi", "janakkala", "declined"),
                                ("milja-kopsi", "vantaa-1", "accepted"),
                                ("ulla-nord", "vantaa-1", "tentative")):
        daemon.clock.advance(60)  # type: ignore[attr-defined]
        path = _answer_path(daemon, url, mentor, sid)
        assert fetch(url, path, method="POST", body=f"answer={answer}".encode(), headers=FORM).status == 200
    public = fetch(url, "/").body.decode()
    assert "Vastaukset: 1 tulossa · 1 ehkä · 0 ei tule · 0 ei vastannut" in public
    assert "Vastaukset: 0 tulossa · 0 ehkä · 1 ei tule · 0 ei vastannut" in public
    # who answered what is not public: no answer words beside names, no answer links
    assert "Tulen" not in public
    assert "En tule" not in public
    assert "/rsvp/" not in public
    assert "/rsvp/" not in fetch(url, "/mentors/milja-kopsi").body.decode()  # nor the public one

    assert fetch(url, "/organisers").status == 401
    assert "Basic" in fetch(url, "/organisers").headers["www-authenticate"]
    assert fetch(url, "/organisers", headers=_basic("wrong")).status == 401
    assert fetch(url, "/organisers/answers.atom").status == 401
    view = fetch(url, "/organisers?lang=en", headers=_basic(PASSWORD))
    assert view.status == 200
    assert view.headers["cache-control"] == "private, no-store"
    html = view.body.decode()
    assert "1 coming · 1 maybe · 0 not coming · 0 no answer" in html
    assert re.search(r"Milja Köpsi</th>\s*<td>Coming</td>\s*<td>2026-09-01 12:32</td><td>on the page", html)
    assert re.search(r"Ulla Nord</th>\s*<td>Maybe</td>\s*<td>2026-09-01 12:33</td>", html)
    assert re.search(r'Milja Köpsi</th>\s*<td class="declined">Not coming</td>', html)
    assert PASSWORD not in html

    feed = fetch(url, "/organisers/answers.atom?lang=en", headers=_basic(PASSWORD))
    assert feed.status == 200
    atom = "{http://www.w3.org/2005/Atom}"
    titles = [e.findtext(f"{atom}title") for e in ET.fromstring(feed.body).iter(f"{atom}entry")]
    assert titles == ["Ulla Nord may come to Vantaan tilaisuus, 8.10.",
                      "Milja Köpsi accepted Vantaan tilaisuus, 8.10.",
                      "Milja Köpsi declined Janakkala, 24.9."]
    finnish = fetch(url, "/organisers/answers.atom", headers=_basic(PASSWORD)).body.decode()
    assert "Milja Köpsi ei tule: Janakkala, 24.9." in finnish
    assert "Milja" not in fetch(url, "/changes.atom").body.decode()  # the public feed has no answers

    metrics = fetch(url, "/metrics").body.decode()
    assert 'klash_answers{answer="accepted",session="vantaa-1"} 1.0' in metrics
    assert 'klash_answers{answer="tentative",session="vantaa-1"} 1.0' in metrics
    assert 'klash_answers{answer="declined",session="janakkala"} 1.0' in metrics
    assert 'klash_answers{answer="none",session="janakkala"} 0.0' in metrics


def test_without_a_password_the_organisers_view_does_not_exist(tmp_path):
    path = tmp_path / "programme.toml"
    path.write_text(PROGRAMME, encoding="utf-8")
    settings = Settings(programme=path, state_dir=tmp_path / "state", host="127.0.0.1", port=0,
                        embedded_caldav=False, _env_file=None)  # type: ignore[call-arg]
    daemon = Daemon(settings, clock=FakeClock(T0))
    daemon.start()
    try:
        url = base_url(daemon)
        for where in ("/organisers", "/organisers/answers.atom"):
            assert fetch(url, where).status == 404
            assert fetch(url, where, headers=_basic("anything")).status == 404
        # No secret: no answer links anywhere, and no answer pages.
        assert "/rsvp/" not in fetch(url, "/mentors/milja-kopsi").body.decode()
        nothing = "/rsvp/milja-kopsi.janakkala.AAAAAAAAAAAAAAAAAAAAAA"
        assert fetch(url, nothing).status == 404
        assert fetch(url, nothing, method="POST", body=b"answer=accepted", headers=FORM).status == 404
    finally:
        daemon.stop()


def test_private_feed_carries_the_links_and_a_public_feed_never(rig, tmp_path):
    daemon, url, _ = rig
    keys = daemon.app.keys
    assert keys is not None
    private = fetch(url, f"/feeds/mentors/milja-kopsi/{keys.token('milja-kopsi')}.ics").body.decode()
    unfolded = private.replace("\r\n ", "")
    token = keys.answer_token("milja-kopsi", "janakkala")
    assert f"{url}/rsvp/{token}?answer=declined" in unfolded
    assert urlsplit(url).netloc in unfolded
    assert "/rsvp/" not in fetch(url, "/feeds/programme.ics").body.decode()
    assert "/rsvp/" not in fetch(url, "/feeds/municipalities/vantaa.ics").body.decode()


def test_invitations_carry_the_answer_links_that_record_the_answer(tmp_path, smtp, monkeypatch):
    """Text and HTML of each invitation link the mentor's own answer page (with a public address)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp.cert))
    text = header() + session("vantaa", timed("2026-07-02", "10:00", "12:00"), ["milja-kopsi", "ulla-nord"])
    daemon, clock, path = start_invite_daemon(tmp_path, smtp, text, delay=60, secret=SECRET,
                                              public_url="https://klash.example.fi")
    try:
        clock.advance(61)
        settle(daemon)
        mails = {m.recipients[0]: m.message for m in smtp.handler.messages()}
        milja = mails[ADDRESSES["milja-kopsi"]]
        plain = milja.get_body(("plain",)).get_content().replace("\r\n", "\n")
        html = milja.get_body(("html",)).get_content()
        keys = daemon.app.keys
        assert keys is not None
        link = f"https://klash.example.fi/rsvp/{keys.answer_token('milja-kopsi', 'vantaa')}"
        assert f"Tuletko? Vastaa:\nTulen: {link}?answer=accepted\nEhkä: {link}?answer=tentative\n" \
               f"En tule: {link}?answer=declined\n" in plain
        assert f'<a href="{link}?answer=declined">En tule</a>' in html
        ulla = list(mails[ADDRESSES["ulla-nord"]].walk())
        assert not any(link in str(p.get_payload()) for p in ulla)  # each mentor has their own
        url = base_url(daemon)
        answer = urlsplit(link).path
        assert fetch(url, answer + "?answer=declined").status == 200
        clock.advance(30)
        assert fetch(url, answer, method="POST", body=b"answer=declined", headers=FORM).status == 200
        shown = run_cli("attendance", "--json", env={"KLASH_PROGRAMME": str(path),
                                                      "KLASH_STATE_DIR": str(daemon.settings.state_dir)})
        mentors = json.loads(shown.out)["sessions"][0]["mentors"]
        assert [(m["id"], m["answer"], m["via"]) for m in mentors] == [
            ("milja-kopsi", "declined", "web"), ("ulla-nord", "none", None)]
    finally:
        daemon.stop()
