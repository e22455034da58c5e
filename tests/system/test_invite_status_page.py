"""E-mail invitations on the organisers' status page, from a running daemon and a real SMTP server.

The daemon runs in this process on a fake clock (the quiet period and backoff), its
SMTP traffic goes to aiosmtpd on loopback, and the page is fetched over HTTP (and
looked at in Chromium). The server refuses one mentor with 550: the page shows that
mentor's failure with the server's own line and the others' sent counts, in each
language, and never the SMTP password. The static export, which has no daemon,
shows no invitation table even when the outbox in the state store is full.
"""

from __future__ import annotations

import logging
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.fixtures.browser import AXE, DESKTOP, PHONE, shot
from tests.fixtures.common import fetch, run_cli
from tests.fixtures.daemon_rig import settle
from tests.fixtures.invite_helpers import ADDRESSES, header, session, start_invite_daemon, timed
from tests.fixtures.smtp_server import PASSWORD

MILJA, ULLA = ADDRESSES["milja-kopsi"], ADDRESSES["ulla-nord"]
DELAY = 120
REFUSAL_SENT = "550 5.1.1 <milja@example.test>: Recipient address rejected: User unknown"
# As shown: the refused address is masked (the page is public and names mentors by id).
REFUSAL = "550 5.1.1 <(address)>: Recipient address rejected: User unknown"
CAPTIONS = {"fi": "Kutsut sähköpostilla", "sv": "Inbjudningar per e-post", "en": "Invitations by e-mail"}


def programme() -> str:
    return (header()
            + session("first", timed("2027-07-02", "10:00", "12:00"), ["milja-kopsi", "ulla-nord"])
            + session("second", timed("2027-01-15", "10:00", "11:00"), ["ulla-nord", "pekka-puu"]))


class Table(HTMLParser):
    """The rows of the page's invitations table, each a list of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.caption = ""
        self.rows: list[list[str]] = []
        self._where: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("class", "invitations") in attrs:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.rows[-1].append("")
            self._where = "cell"
        elif self.inside and tag == "caption":
            self._where = "caption"

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif tag in ("td", "th", "caption"):
            self._where = None

    def handle_data(self, data: str) -> None:
        if self._where == "cell":
            self.rows[-1][-1] += data
        elif self._where == "caption":
            self.caption += data


def table(html: str) -> Table:
    parsed = Table()
    parsed.feed(html)
    return parsed


@pytest.fixture
def rig(tmp_path: Path, smtp, monkeypatch):
    """A daemon whose SMTP server refuses Milja with 550, after its first invitation pass."""
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp.cert))
    daemon, clock, path = start_invite_daemon(tmp_path, smtp, programme(), delay=DELAY)
    url = f"http://127.0.0.1:{daemon.server.effective_port}"
    before = fetch(url, "/").body.decode()
    smtp.handler.refuse[MILJA] = REFUSAL_SENT
    clock.advance(DELAY + 1)
    settle(daemon)
    assert sorted(m.recipients[0] for m in smtp.handler.messages()) == [ULLA, ULLA]
    yield daemon, url, before, path
    daemon.stop()


def test_status_page_shows_each_invited_mentors_outbox(rig, caplog):
    caplog.set_level(logging.DEBUG)
    _, url, before, _ = rig
    # Before the quiet period ends: a row per invited mentor, nothing sent yet.
    assert table(before).rows == [
        ["Mentori", "Lähetetyt", "Odottavat", "Epäonnistuneet", "Viimeksi lähetetty"],
        ["Milja Köpsi", "0", "0", "0", "–"],
        ["Ulla Nord", "0", "0", "0", "–"],
    ]  # Pekka Puu has no invite = true: not in the table

    page = fetch(url, "/").body.decode()
    got = table(page)
    assert got.caption == CAPTIONS["fi"]
    # 12:02:01 UTC is 15.02 in Helsinki (summer time)
    assert got.rows[1:] == [
        ["Milja Köpsi", "0", "0", "✗ 1", "–"],
        ["Sähköpostipalvelimen vastaus (1.6.2026 klo 15.02): " + REFUSAL],
        ["Ulla Nord", "2", "0", "0", "1.6.2026 klo 15.02"],
    ]
    for lang, answer, sent in (("sv", "E-postserverns svar (1.6.2026 kl. 15.02): ", "1.6.2026 kl. 15.02"),
                               ("en", "Mail server's answer (2026-06-01 15:02): ", "2026-06-01 15:02")):
        localised = table(fetch(url, f"/?lang={lang}").body.decode())
        assert localised.caption == CAPTIONS[lang]
        assert localised.rows[2] == [answer + REFUSAL]
        assert localised.rows[3] == ["Ulla Nord", "2", "0", "0", sent]
    # The mentors' own pages carry no organisers' status.
    assert table(fetch(url, "/mentors/ulla-nord").body.decode()).rows == []
    for path in ("/", "/?lang=sv", "/?lang=en"):
        assert PASSWORD not in fetch(url, path).body.decode()
        assert "milja@example.test" not in fetch(url, path).body.decode()  # nor the mentor's address
    assert PASSWORD not in caplog.text


def test_page_follows_the_outbox_through_a_retry_and_the_fix(rig, smtp):
    daemon, url, _, path = rig
    # The organiser fixes Milja's address while the server answers 421 to everyone: pending,
    # with the server's words, shown as a wait (not as a failure).
    del smtp.handler.refuse[MILJA]
    smtp.handler.answer_all = "421 4.3.2 Service not available, try again later"
    path.write_text(programme().replace(MILJA, "milja.kopsi@example.test"), encoding="utf-8")
    assert daemon.reload()
    daemon.clock.advance(DELAY + 1)  # type: ignore[attr-defined]
    settle(daemon)
    page = fetch(url, "/").body.decode()
    assert table(page).rows[1:] == [
        ["Milja Köpsi", "0", "1", "0", "–"],
        ["Sähköpostipalvelimen vastaus (1.6.2026 klo 15.04): 421 4.3.2 Service not available, "
         "try again later"],
        ["Ulla Nord", "2", "0", "0", "1.6.2026 klo 15.02"],
    ]
    assert '<span class="meta">Sähköpostipalvelimen vastaus' in page
    # The server answers again: after the backoff the message goes out and the line clears.
    smtp.handler.answer_all = None
    daemon.clock.advance(61)  # type: ignore[attr-defined]
    settle(daemon)
    rows = table(fetch(url, "/").body.decode()).rows
    assert rows[1:] == [["Milja Köpsi", "1", "0", "0", "1.6.2026 klo 15.05"],
                        ["Ulla Nord", "2", "0", "0", "1.6.2026 klo 15.02"]]  # nothing new for Ulla


def test_no_table_when_nobody_is_invited(rig):
    daemon, url, _, path = rig
    path.write_text(programme().replace("invite = true", "invite = false"), encoding="utf-8")
    assert daemon.reload()
    page = fetch(url, "/").body.decode()
    assert table(page).rows == []
    assert CAPTIONS["fi"] not in page


def test_static_export_shows_no_invitations_even_with_a_full_outbox(rig, tmp_path):
    """No daemon keeps the export's counts current, so it shows none (not stale ones)."""
    daemon, url, _, path = rig
    assert table(fetch(url, "/").body.decode()).rows  # the daemon's page has the table
    site = tmp_path / "site"
    env = {"KLASH_STATE_DIR": str(daemon.settings.state_dir), "KLASH_PUBLIC_URL": "https://klash.example.fi"}
    done = run_cli("export", "--all", str(site), "--programme", str(path), env=env)
    assert done.code == 0, done.err
    for name in ("index.html", "index.sv.html", "index.en.html"):
        html = (site / name).read_text(encoding="utf-8")
        assert table(html).rows == []
        assert CAPTIONS["fi"] not in html
        assert "Recipient address rejected" not in html


def test_invitation_status_in_the_browser_phone_and_desktop(rig, browser):
    _, url, _, _ = rig
    assert AXE.exists(), "run `npm ci --prefix tests/js` first"
    for lang in ("fi", "en"):
        for size, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            context = browser.new_context(viewport=viewport, bypass_csp=True)
            page = context.new_page()
            page.goto(f"{url}/?lang={lang}")
            invitations = page.get_by_role("region", name=CAPTIONS[lang])
            invitations.scroll_into_view_if_needed()
            assert REFUSAL in invitations.inner_text()
            assert invitations.locator(".failing").first.is_visible()
            # readable at 360 px: neither the page nor the table needs sideways scrolling
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
            shot(page, f"invitations-{lang}-{size}")
            assert invitations.evaluate("e => e.scrollWidth <= e.clientWidth")
            page.add_script_tag(path=str(AXE))
            result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
            serious = [(v["id"], [n["target"] for n in v["nodes"]][:3])
                       for v in result["violations"] if v["impact"] in ("serious", "critical")]
            assert serious == []
            context.close()
