"""Answering on the page and the organisers' view, in a real headless Chromium (Debian's).

The daemon runs in this process on a fake clock and serves on a free port; the browser
follows a mentor's answer link from their private page, presses a button (a real form
POST, with the Origin and Sec-Fetch-Site headers Chromium sends) and sees the
confirmation in the mentor's language; the organisers log in with HTTP Basic. Every page
at phone and desktop width, screenshots in test-artifacts/screenshots/, and axe finds no
serious or critical violation, as on the other pages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from klash_sync.clock import FakeClock
from klash_sync.service.daemon import Daemon
from klash_sync.settings import Settings
from tests.fixtures.browser import AXE, DESKTOP, PHONE, shot
from tests.fixtures.common import SWEDISH_ULLA, programme_text
from tests.fixtures.daemon_rig import base_url, settle

SECRET = "browser-rsvp-secret-0123456789"
PASSWORD = "pullaa-ja-kahvia-7"
PROGRAMME = programme_text("""
id = "vantaa-1"
title = "Vantaan tilaisuus"
municipality = "Vantaa"
location = "Tikkurilan kirjasto, Lummetie 2, Vantaa"
start = 2026-10-08T09:00:00
end = 2026-10-08T11:00:00
mentors = ["milja-kopsi", "ulla-nord"]
""", header=SWEDISH_ULLA)


@pytest.fixture
def rig(tmp_path: Path):
    path = tmp_path / "programme.toml"
    path.write_text(PROGRAMME, encoding="utf-8")
    secret = tmp_path / "organiser-password"  # as a Docker or systemd secret is mounted
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    settings = Settings(programme=path, state_dir=tmp_path / "state", host="127.0.0.1", port=0,
                        embedded_caldav=False, private_feeds=True, secret=SECRET,
                        organiser_password_file=secret, _env_file=None)  # type: ignore[call-arg]
    daemon = Daemon(settings, clock=FakeClock(datetime(2026, 9, 1, 9, 30, tzinfo=UTC)))
    daemon.start()
    settle(daemon)
    yield daemon, base_url(daemon)
    daemon.stop()


def _serious(page) -> list:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [(v["id"], [n["target"] for n in v["nodes"]][:3])
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def test_a_mentor_answers_from_their_page_in_their_language(browser, rig):
    daemon, url = rig
    assert AXE.exists(), "run `npm ci --prefix tests/js` first"
    keys = daemon.app.keys
    assert keys is not None
    for size, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        context = browser.new_context(viewport=viewport, bypass_csp=True)  # to inject axe-core
        page = context.new_page()
        page.goto(f"{url}/mentors/ulla-nord/{keys.token('ulla-nord')}?lang=sv")
        page.get_by_role("link", name="Jag kommer inte").click()
        page.wait_for_url("**/rsvp/**?answer=declined")
        assert page.locator("html").get_attribute("lang") == "sv"
        assert "Tikkurilan kirjasto" in page.locator("main").inner_text()
        buttons = page.get_by_role("button")
        assert buttons.all_inner_texts() == ["Jag kommer", "Kanske", "Jag kommer inte"]
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        shot(page, f"rsvp-sv-{size}")
        assert _serious(page) == []
        page.get_by_role("button", name="Jag kommer inte").click()
        page.get_by_role("status").wait_for()
        assert "Ditt svar har sparats: Jag kommer inte" in page.get_by_role("status").inner_text()
        shot(page, f"rsvp-sv-saved-{size}")
        assert _serious(page) == []
        context.close()
    rows = {r.id: r for r in daemon.live.attendance or ()}
    assert [(m.id, m.answer, m.via) for m in rows["vantaa-1"].mentors] == [
        ("milja-kopsi", "none", None), ("ulla-nord", "declined", "web")]


def test_the_organisers_view_behind_the_password(browser, rig):
    daemon, url = rig
    keys = daemon.app.keys
    assert keys is not None
    without = browser.new_context()
    assert without.request.get(f"{url}/organisers").status == 401  # (a page load would fail)
    without.close()
    answer = f"{url}/rsvp/{keys.answer_token('milja-kopsi', 'vantaa-1')}"
    for size, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        context = browser.new_context(viewport=viewport, bypass_csp=True, locale="fi-FI",
                                      http_credentials={"username": "organiser", "password": PASSWORD})
        page = context.new_page()
        if size == "phone":  # Milja says yes on her phone first
            page.goto(answer)
            page.get_by_role("button", name="Tulen").click()
            page.get_by_role("status").wait_for()
        page.goto(f"{url}/organisers")
        text = page.locator("main").inner_text()
        assert "1 tulossa · 0 ehkä · 0 ei tule · 1 ei vastannut" in text
        table = page.get_by_role("region", name="Vastaukset: Vantaan tilaisuus")
        assert "Milja Köpsi" in table.inner_text()
        assert "sivulla" in table.inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        shot(page, f"organisers-fi-{size}")
        assert _serious(page) == []
        context.close()
