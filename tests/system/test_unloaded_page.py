"""At start with a broken programme and no last good one, the page explains, still with 503."""

from __future__ import annotations

import html
import json

from tests.fixtures.common import SHIPPED, fetch
from tests.fixtures.processes import start_daemon, stop, wait_for


def test_unloaded_programme_page_shows_the_error_and_a_note(tmp_path):
    path = tmp_path / "programme.toml"
    good = SHIPPED.read_text(encoding="utf-8")
    path.write_text(good.replace("date = 2019-10-08", "date = \"8.10.2019\""), encoding="utf-8")
    d = start_daemon(tmp_path, path, KLASH_EMBEDDED_CALDAV="false")
    try:
        wait_for(lambda: fetch(d.url, "/healthz").status == 503
                 and json.loads(fetch(d.url, "/healthz").body)["programme"]["error"], 20, "the error")
        error = json.loads(fetch(d.url, "/healthz").body)["programme"]["error"]
        page = fetch(d.url, "/")
        assert page.status == 503
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["retry-after"] == "5"
        body = html.unescape(page.body.decode())
        # The organiser sees the validation error in plain words, as on the status section.
        assert error in body
        assert "programme.toml" in error
        assert "session" in error
        # Mentors see a short note.
        assert "Ohjelmaa päivitetään parhaillaan" in body
        english = html.unescape(fetch(d.url, "/?lang=en").body.decode())
        assert "The programme is being updated right now" in english
        assert error in english
        by_header = fetch(d.url, "/", headers={"Accept-Language": "en-GB,en;q=0.8"}).body.decode()
        assert '<html lang="en">' in by_header
        mentor = fetch(d.url, "/mentors/ulla-nord?lang=en")
        assert mentor.status == 503
        assert "The programme is being updated" in mentor.body.decode()
        assert 'href="/mentors/ulla-nord?lang=fi"' in mentor.body.decode()  # the switch keeps the page
        # Machines: feeds stay a plain 503.
        feed = fetch(d.url, "/feeds/programme.ics")
        assert feed.status == 503
        assert feed.headers["content-type"].startswith("text/plain")
        # Fixed: the page is there at once.
        path.write_text(good, encoding="utf-8")
        # (at once: also when saved before the file watcher is up, right after the start)
        wait_for(lambda: fetch(d.url, "/").status == 200, 10, "the fixed programme")
    finally:
        stop(d)
