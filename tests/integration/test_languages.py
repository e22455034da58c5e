"""The page in Finnish, Swedish and English: every text in each, chosen by ?lang= or the
browser, and every link keeping the language (the switch keeping the page and its token)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape
from html.parser import HTMLParser
from xml.etree import ElementTree as ET

import pytest

from klash_sync.programme.load import load
from klash_sync.service.publish import publish
from klash_sync.state.store import Store
from klash_sync.status import Live
from klash_sync.web.atom import ATOM
from klash_sync.web.page import _WEEKDAYS
from klash_sync.web.texts import LANGUAGE_NAMES, LANGUAGES, TEXTS
from klash_sync.web.tokens import FeedKeys, token
from tests.fixtures.common import ROOT, SHIPPED, fetch

SECRET = "a-language-test-secret-0123456789"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TEMPLATES = ROOT / "klash_sync" / "templates"


def test_every_text_is_in_every_language():
    assert set(TEXTS) == set(LANGUAGES) == {"fi", "sv", "en"}
    keys = set().union(*(TEXTS[lang] for lang in LANGUAGES))
    for lang in LANGUAGES:
        missing = keys - set(TEXTS[lang])
        assert not missing, f"{lang} lacks {sorted(missing)}"
        assert all(text.strip() for text in TEXTS[lang].values()), lang
        assert len(_WEEKDAYS[lang]) == 7
        assert LANGUAGE_NAMES[lang]
    used = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"\bt\.(\w+)", template.read_text(encoding="utf-8")))
    assert used <= keys, f"templates use texts no language has: {sorted(used - keys)}"


def test_swedish_is_translated_not_copied():
    same_as_english = {k for k, v in TEXTS["sv"].items() if v == TEXTS["en"][k]}
    same_as_finnish = {k for k, v in TEXTS["sv"].items() if v == TEXTS["fi"][k]}
    assert same_as_english <= {"mentor"}  # "Mentor" is the word in both
    assert same_as_finnish == set()
    assert TEXTS["sv"]["programme"] == "Program"
    assert TEXTS["sv"]["subscribe"] == "Prenumerera"
    assert TEXTS["sv"]["cancelled"] == "Inställd"
    assert TEXTS["sv"]["all_day"] == "hela dagen"


@pytest.fixture
def site(serve_live, tmp_path):
    store = Store(tmp_path / "state" / "state.sqlite3")
    live = Live()
    running = serve_live(live, private_feeds=True, secret=SECRET, public_url="https://kunnat.example.fi/klash")
    running.app.keys = FeedKeys(SECRET.encode(), store)
    live.set_snapshot(publish(load(SHIPPED), store, now=T0, base_url=running.app.settings.base_url))
    yield running
    store.close()


def page(site, path: str, **headers: str) -> tuple[str, str]:
    answer = fetch(site.url, path, headers=headers)
    assert answer.status == 200, path
    return answer.headers["content-language"], answer.body.decode()


@pytest.mark.parametrize(("query", "accept", "expected"), [
    ("?lang=sv", "", "sv"), ("", "sv", "sv"), ("", "sv-FI", "sv"), ("", "sv-FI,fi;q=0.8,en;q=0.5", "sv"),
    ("", "fi-FI,sv;q=0.5", "fi"), ("", "en-GB", "en"), ("", "de-DE", "fi"), ("?lang=en", "sv-FI", "en"),
    ("?lang=fi", "sv-FI", "fi"), ("?lang=xx", "sv", "sv"),
])
def test_language_from_query_then_browser(site, query, accept, expected):
    headers = {"Accept-Language": accept} if accept else {}
    language, body = page(site, "/" + query, **headers)
    assert language == expected
    assert f'<html lang="{expected}">' in body


def test_swedish_page_in_finland_swedish(site):
    _, body = page(site, "/?lang=sv")
    text = unescape(re.sub(r"<[^>]+>", " ", body))
    for words in ("Program", "Prenumerera", "hela dagen", "tis 24.9.2019", "Kommun: Vanda",
                  "Kommun: Joensuu", "Kommun: Janakkala", "Läget för arrangörerna", "Mentorer",
                  "Klash 2019 – mentoroinnit – Vanda", "Så här prenumererar du", "Programmet inläst",
                  "kl.", "Inga ändringar ännu."):
        assert words in text, words
    assert "Kommun: Vantaa" not in text
    for finnish in ("koko päivä", "Tilaa", "Kunta:"):
        assert finnish not in text, finnish


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if "href" in found:
            self.links.append(found)


def links_of(body: str) -> list[dict[str, str]]:
    parser = Links()
    parser.feed(body)
    return parser.links


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
def test_every_link_keeps_the_language_and_the_switch_keeps_the_page(site, lang):
    milja = token(SECRET.encode(), "milja-kopsi", 0)
    pages = {"/": "/klash/", "/mentors/ulla-nord": "/klash/mentors/ulla-nord",
             f"/mentors/milja-kopsi/{milja}": f"/klash/mentors/milja-kopsi/{milja}"}
    for path, public_path in pages.items():
        _, body = page(site, f"{path}?lang={lang}")
        switch = {}
        for link in links_of(body):
            href = link["href"]
            if href.startswith(("https://kunnat.example.fi/klash/feeds/", "webcal://")):
                continue  # feeds have no language
            assert href.startswith("/klash/"), href
            if "hreflang" in link:  # the language switch
                switch[link["hreflang"]] = href
                continue
            assert href.endswith(f"lang={lang}") or f".atom?lang={lang}" in href, href
        others = [code for code in LANGUAGES if code != lang]
        assert switch == {code: f"{public_path}?lang={code}" for code in others}, path
        for code in others:
            assert f'lang="{code}">{LANGUAGE_NAMES[code]}</a>' in body


def test_atom_feed_in_swedish(site):
    answer = fetch(site.url, "/changes.atom?lang=sv")
    root = ET.fromstring(answer.body)
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "sv"
    assert root.find(f"{{{ATOM}}}title").text.endswith(": Ändringar")  # type: ignore[union-attr]
    hrefs = [e.get("href") for e in root.iter(f"{{{ATOM}}}link")]
    assert "https://kunnat.example.fi/klash/?lang=sv" in hrefs
    assert "https://kunnat.example.fi/klash/changes.atom?lang=sv" in hrefs


def test_static_export_has_each_language(tmp_path):
    from tests.fixtures.common import run_cli

    site = tmp_path / "site"
    env = {"KLASH_STATE_DIR": str(tmp_path / "state"), "KLASH_PUBLIC_URL": "https://kunnat.example.fi/klash"}
    assert run_cli("export", "--all", str(site), env=env).code == 0
    swedish = (site / "index.sv.html").read_text(encoding="utf-8")
    assert '<html lang="sv">' in swedish
    assert 'href="/klash/index.html" hreflang="fi"' in swedish
    assert 'href="/klash/index.en.html" hreflang="en"' in swedish
    assert 'href="/klash/mentors/ulla-nord.sv.html"' in swedish
    mentor = (site / "mentors" / "ulla-nord.sv.html").read_text(encoding="utf-8")
    assert 'href="/klash/mentors/ulla-nord.en.html" hreflang="en"' in mentor
    assert (site / "changes.sv.atom").is_file()
