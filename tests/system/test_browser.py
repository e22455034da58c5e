"""The page in a real headless Chromium (Debian's), driven by Playwright, from a running daemon.

Screenshots of each page at phone and desktop width go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import json

import pytest

from tests.fixtures.browser import AXE, DESKTOP, PHONE, shot
from tests.fixtures.common import ROOT, fetch
from tests.fixtures.processes import start_daemon, stop, wait_for


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    programme = tmp / "programme.toml"
    shipped = (ROOT / "config" / "programme.toml").read_text(encoding="utf-8")
    programme.write_text(shipped, encoding="utf-8")
    d = start_daemon(tmp, programme)
    wait_for(lambda: len(json.loads(fetch(d.url, "/healthz").body)["calendars"]) == 8, 30, "first sync")
    # The organisers move Vantaa and cancel the first joint session: the change log fills.
    edited = shipped.replace("date = 2019-10-08", "start = 2019-10-09T09:00:00\nend = 2019-10-09T12:00:00")
    edited = edited.replace('date = 2019-10-15\n', 'date = 2019-10-15\nstatus = "cancelled"\n')
    programme.write_text(edited, encoding="utf-8")
    wait_for(lambda: "peruttu" in fetch(d.url, "/").body.decode(), 10, "the edit on the page")
    wait_for(lambda: all(c["ok"] and c["last_sync"] for c in
                         json.loads(fetch(d.url, "/healthz").body)["calendars"]), 30, "calendars in sync")
    yield d
    stop(d)


@pytest.mark.parametrize(("size", "viewport"), [("phone", PHONE), ("desktop", DESKTOP)])
def test_index_in_finnish_with_sessions_links_and_changes(browser, daemon, size, viewport):
    page = browser.new_page(viewport=viewport, locale="fi-FI")
    page.goto(daemon.url + "/")
    assert page.locator("html").get_attribute("lang") == "fi"
    text = page.locator("main").inner_text()
    for words in ("ti 24.9.2019", "Janakkalan kunnan osuus ja liikkumispalvelut", "koko päivä",
                  "Taina Haapamäki, Sami Tantarimäki", "Kunta: Vantaa", "ke 9.10.2019", "09.00–12.00",
                  "yhteinen tilaisuus kaikille tiimeille"):
        assert words in text, words
    cancelled = page.locator("article#yhteinen-2019-10-15")
    assert "Peruttu" in cancelled.inner_text()
    decoration = cancelled.locator(".title").evaluate("e => getComputedStyle(e).textDecorationLine")
    assert "line-through" in decoration
    # Subscribe: a webcal link, the https link, a QR code, for every public feed.
    feeds = page.locator(".feed")
    assert feeds.count() == 4
    host = daemon.url.split("://")[1]
    assert page.locator(f'a[href="webcal://{host}/feeds/programme.ics"]').count() == 1
    assert page.locator(f'a[href="{daemon.url}/feeds/municipalities/vantaa.ics"]').count() == 1
    assert page.locator(".feed figure svg").count() == 4
    assert "Google päivittää tilatut kalenterit vain muutaman tunnin välein" in text
    # What changed, newest first, in words.
    changes = page.locator("ul.changes li").all_inner_texts()
    assert any("siirretty 8.10. → 9.10. 9–12" in c for c in changes), changes
    assert any("15.10., peruttu" in c for c in changes), changes
    # Organiser status: loaded, and every calendar in sync.
    assert "Ohjelma luettu" in text
    assert text.count("✓ ajan tasalla") == 8
    # Readable on a phone: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    shot(page, f"index-fi-{size}")
    page.close()


def test_language_switch_and_accept_language(browser, daemon):
    page = browser.new_page(viewport=PHONE, locale="fi-FI")
    page.goto(daemon.url + "/")
    page.get_by_role("link", name="In English").click()
    page.wait_for_url("**/?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    text = page.locator("main").inner_text()
    assert "all day" in text
    assert "Subscribe" in text
    assert "moved from 8 Oct to 9 Oct 09:00–12:00" in text
    shot(page, "index-en-phone")
    page.close()
    context = browser.new_context(locale="en-GB", extra_http_headers={"Accept-Language": "en-GB,en;q=0.9"})
    english = context.new_page()
    english.goto(daemon.url + "/")
    assert english.locator("html").get_attribute("lang") == "en"
    context.close()


LANGUAGE_WORDS = {  # words each language's page must show, and the html lang
    "fi": ("Ohjelma", "koko päivä", "Kunta: Vantaa", "ti 24.9.2019"),
    "sv": ("Program", "hela dagen", "Kommun: Vanda", "tis 24.9.2019"),
    "en": ("Programme", "all day", "Municipality: Vantaa", "Tue 2019-09-24"),
}


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
@pytest.mark.parametrize(("size", "viewport"), [("phone", PHONE), ("desktop", DESKTOP)])
def test_each_language_on_phone_and_desktop(browser, daemon, lang, size, viewport):
    page = browser.new_page(viewport=viewport)
    for path, name in ((f"/?lang={lang}", "index"), (f"/mentors/milja-kopsi?lang={lang}", "mentor")):
        page.goto(daemon.url + path)
        assert page.locator("html").get_attribute("lang") == lang
        text = page.locator("main").inner_text()
        for words in LANGUAGE_WORDS[lang] if name == "index" else LANGUAGE_WORDS[lang][:1]:
            assert words in text, (lang, name, words)
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        shot(page, f"{name}-{lang}-{size}")
    page.close()


def test_swedish_from_the_switch_and_the_browser_keeps_the_page(browser, daemon):
    page = browser.new_page(viewport=PHONE, locale="fi-FI")
    page.goto(daemon.url + "/mentors/ulla-nord")
    page.get_by_role("link", name="På svenska").click()
    page.wait_for_url("**/mentors/ulla-nord?lang=sv")
    assert "Din kalender" in page.locator("main").inner_text()
    page.get_by_role("link", name="In English").click()
    page.wait_for_url("**/mentors/ulla-nord?lang=en")
    page.get_by_role("link", name="Whole programme").click()
    page.wait_for_url("**/?lang=en")
    page.close()
    context = browser.new_context(locale="sv-FI", extra_http_headers={"Accept-Language": "sv-FI,sv;q=0.9"})
    swedish = context.new_page()
    swedish.goto(daemon.url + "/")
    assert swedish.locator("html").get_attribute("lang") == "sv"
    assert "Prenumerera" in swedish.locator("main").inner_text()
    context.close()


def test_copy_button_copies_the_https_link(browser, daemon):
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"], locale="fi-FI")
    page = context.new_page()
    page.goto(daemon.url + "/")
    button = page.locator("button.copy").first
    assert button.is_visible(), "the script shows the buttons"
    assert button.inner_text() == "Kopioi linkki"
    expected = button.get_attribute("data-copy")
    assert expected == f"{daemon.url}/feeds/programme.ics"
    button.click()
    page.wait_for_function("document.querySelector('button.copy').textContent === 'Kopioitu!'")
    assert page.evaluate("navigator.clipboard.readText()") == expected
    context.close()


def test_page_works_without_javascript(browser, daemon):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(daemon.url + "/")
    assert page.locator("article.session").count() == 5
    assert page.locator("button.copy").first.is_hidden()  # no dead buttons without a script
    assert page.locator(".feed a.subscribe").count() == 4
    context.close()


@pytest.mark.parametrize(("size", "viewport"), [("phone", PHONE), ("desktop", DESKTOP)])
def test_mentor_page_shows_own_sessions_feed_and_calendar(browser, daemon, size, viewport):
    page = browser.new_page(viewport=viewport, locale="fi-FI")
    page.goto(daemon.url + "/")
    page.get_by_role("link", name="Ulla Nord").click()
    page.wait_for_url("**/mentors/ulla-nord?lang=fi")
    text = page.locator("main").inner_text()
    assert "Nuoret opintopolulle" in text
    assert "Janakkala" not in text
    assert page.locator("article.session").count() == 1
    assert page.locator(f'a[href="{daemon.url}/feeds/mentors/ulla-nord.ics"]').count() == 1
    assert "✓ ajan tasalla" in text
    assert "viimeisin synkronointi" in text
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    shot(page, f"mentor-fi-{size}")
    page.close()


@pytest.mark.parametrize("path", ["/", "/?lang=en", "/?lang=sv", "/mentors/ulla-nord",
                                  "/mentors/ulla-nord?lang=sv", "/mentors/ulla-nord?lang=en"])
def test_no_serious_accessibility_violations(browser, daemon, path):
    assert AXE.exists(), "run `npm ci --prefix tests/js` first (the README's test command does)"
    context = browser.new_context(bypass_csp=True, viewport=PHONE)  # to inject axe-core from disk
    page = context.new_page()
    page.goto(daemon.url + path)
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    serious = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
               for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == []
    context.close()


def test_hostile_programme_text_shows_as_text_and_runs_nothing(browser, tmp_path):
    hostile = (
        '[programme]\nname = "<script>alert(1)</script> ohjelma"\nuid_domain = "klash.test"\n'
        'organiser = "\\"><img src=x onerror=alert(2)>"\n'
        '[[mentors]]\nid = "m"\nname = "<b onmouseover=alert(3)>Mentori</b>"\n'
        '[[sessions]]\nid = "s"\ntitle = "<script>alert(4)</script>"\n'
        'municipality = "\'><svg onload=alert(5)>"\n'
        'location = "javascript:alert(6)"\ndate = 2019-10-01\nmentors = ["m"]\n'
        'description = "<iframe src=javascript:alert(7)>"\n')
    path = tmp_path / "programme.toml"
    path.write_text(hostile)
    d = start_daemon(tmp_path, path, KLASH_EMBEDDED_CALDAV="false")
    try:
        page = browser.new_page()
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        for url in ("/", "/mentors/m", "/?lang=en"):
            page.goto(d.url + url)
            page.wait_for_load_state("networkidle")
            text = page.locator("body").inner_text()
            assert "<script>alert(4)</script>" in text or (url == "/mentors/m" and "<script>" in text)
            assert "javascript:alert(6)" in text
            assert page.locator("main script, main img, main iframe, main svg[onload], main b").count() == 0
            assert page.locator("a[href^='javascript:']").count() == 0
        assert page.title().startswith("<script>") or "<script>" in page.title()
        assert dialogs == []
        page.close()
    finally:
        stop(d)


def test_unloaded_programme_page_in_the_browser(browser, tmp_path):
    """A broken file at start, no last good one: a note, the error, 503, accessible."""
    path = tmp_path / "programme.toml"
    shipped = (ROOT / "config" / "programme.toml").read_text(encoding="utf-8")
    path.write_text(shipped.replace("date = 2019-10-08", 'date = "8.10.2019"'), encoding="utf-8")
    d = start_daemon(tmp_path, path, KLASH_EMBEDDED_CALDAV="false")
    try:
        wait_for(lambda: json.loads(fetch(d.url, "/healthz").body)["programme"]["error"], 20, "the error")
        for size, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            context = browser.new_context(viewport=viewport, locale="fi-FI", bypass_csp=True)
            page = context.new_page()
            response = page.goto(d.url + "/")
            assert response is not None
            assert response.status == 503
            text = page.locator("main").inner_text()
            assert "Ohjelmaa päivitetään parhaillaan" in text
            assert "is not a date (got '8.10.2019')" in text
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
            shot(page, f"unloaded-fi-{size}")
            page.add_script_tag(path=str(AXE))
            result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
            assert [v["id"] for v in result["violations"] if v["impact"] in ("serious", "critical")] == []
            context.close()
    finally:
        stop(d)
