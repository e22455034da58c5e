"""The change log: sentences for each applied edit, kept in the store, served as Atom."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

from klash_sync.programme.load import parse
from klash_sync.render.changes import describe, when_text
from klash_sync.service.publish import publish
from klash_sync.state.store import Store
from klash_sync.web.atom import ATOM, atom
from tests.fixtures.common import fetch, programme_text

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
VANTAA = 'id = "vantaa"\ntitle = "Vantaa"\nmunicipality = "Vantaa"\nlocation = "Tikkurila"\ndate = 2019-10-08'
JOINT = 'id = "yhteinen"\ntitle = "Yhteinen"\ndate = 2019-10-15\nmentors = ["ulla-nord"]'


def test_when_text_in_both_languages():
    timed = {"start": "2019-10-09T09:00:00+03:00", "end": "2019-10-09T12:30:00+03:00"}
    assert when_text(timed, "fi") == "9.10. 9–12.30"
    assert when_text(timed, "en") == "9 Oct 09:00–12:30"
    days = {"start": "2019-10-08", "end": "2019-10-10"}
    assert when_text(days, "fi") == "8.10.–9.10."
    assert when_text({"start": "2019-10-08", "end": "2019-10-09"}, "en") == "8 Oct"


def test_sentences_for_each_kind_of_change():
    old = {"title": "Vantaa", "start": "2019-10-08", "end": "2019-10-09", "location": "Tikkurila",
           "status": "confirmed", "mentors": ["Ulla Nord"]}
    moved = dict(old, start="2019-10-09T09:00:00+03:00", end="2019-10-09T12:00:00+03:00")
    assert describe("changed", old, moved) == (
        "Vantaa: siirretty 8.10. → 9.10. 9–12", "Vantaa: moved from 8 Oct to 9 Oct 09:00–12:00",
        "Vantaa: flyttad 8.10. → 9.10. kl. 9–12")
    assert describe("changed", old, dict(old, status="cancelled"))[2] == "Vantaa, 8.10., inställd"
    assert describe("removed", old, None)[2] == "Vantaa, 8.10., har strukits ur programmet"
    assert describe("changed", old, dict(old, status="cancelled"))[0] == "Vantaa, 8.10., peruttu"
    assert describe("changed", old, dict(old, location="Myyrmäki"))[1] == \
        "Vantaa: place: Myyrmäki (was: Tikkurila)"
    assert describe("added", None, old)[0] == "Uusi tilaisuus: Vantaa, 8.10."
    assert describe("removed", old, None)[1] == "Vantaa, 8 Oct, removed from the programme"
    assert "no longer cancelled" in describe("changed", dict(old, status="cancelled"), old)[1]


def test_store_keeps_changes_from_the_second_version_on(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    publish(parse(programme_text(VANTAA, JOINT).encode(), "p"), store, now=T0, base_url="http://x")
    assert store.recent_changes() == [], "the initial import is not news"
    edited = programme_text(
        VANTAA.replace("date = 2019-10-08", "start = 2019-10-09T09:00:00\nend = 2019-10-09T12:00:00"),
        JOINT + '\nstatus = "cancelled"')
    publish(parse(edited.encode(), "p"), store, now=T0 + timedelta(hours=1), base_url="http://x")
    publish(parse(programme_text(JOINT + '\nstatus = "cancelled"').encode(), "p"), store,
            now=T0 + timedelta(hours=2), base_url="http://x")
    texts = [c.text_fi for c in store.recent_changes()]
    assert texts == ["Vantaa, 9.10. 9–12, poistettu ohjelmasta",  # newest first
                     "Yhteinen, 15.10., peruttu",
                     "Vantaa: siirretty 8.10. → 9.10. 9–12"]
    store.close()


def test_atom_feed_is_valid_and_escaped(tmp_path, serve_live):
    from klash_sync.status import Live

    store = Store(tmp_path / "s.sqlite3")
    publish(parse(programme_text(VANTAA).encode(), "p"), store, now=T0, base_url="http://x")
    renamed = VANTAA.replace('"Vantaa"\nmunicipality', '"<b>&Vantaa</b>"\nmunicipality')
    snap = publish(parse(programme_text(renamed).encode(), "p"), store, now=T0 + timedelta(hours=1),
                   base_url="http://x")
    root = ET.fromstring(atom(snap, store.recent_changes(), "en", "http://x"))
    entries = root.findall(f"{{{ATOM}}}entry")
    assert len(entries) == 1
    assert entries[0].find(f"{{{ATOM}}}title").text == "<b>&Vantaa</b>: renamed (was: Vantaa)"
    assert entries[0].find(f"{{{ATOM}}}id").text == "tag:klash.test,2019:change/1"
    live = Live(snap)
    site = serve_live(live)
    site.app.changes = lambda: store.recent_changes()
    site.app.set_settings(site.app.settings)
    r = fetch(site.url, "/changes.atom?lang=fi")
    assert r.status == 200
    assert r.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert "uusi nimi" in ET.fromstring(r.body).find(f"{{{ATOM}}}entry/{{{ATOM}}}title").text
    store.close()


def test_changes_logged_before_swedish_show_in_finnish_on_a_swedish_page(tmp_path):
    """A store made before Swedish existed gains the column; its entries fall back to Finnish."""
    import sqlite3

    from klash_sync.render.changes import change_text

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, "
               "session TEXT NOT NULL, kind TEXT NOT NULL, text_fi TEXT NOT NULL, text_en TEXT NOT NULL)")
    db.execute("INSERT INTO changes (at, session, kind, text_fi, text_en) VALUES (?, ?, ?, ?, ?)",
               ("2026-01-01T00:00:00+00:00", "v", "changed", "Vantaa, 8.10., peruttu",
                "Vantaa, 8 Oct, cancelled"))
    db.commit()
    db.close()
    store = Store(path)
    old = store.recent_changes()[0]
    assert change_text(old, "sv") == "Vantaa, 8.10., peruttu"
    assert change_text(old, "en") == "Vantaa, 8 Oct, cancelled"
    publish(parse(programme_text(VANTAA).encode(), "p"), store, now=T0, base_url="http://x")
    publish(parse(programme_text(VANTAA + '\nstatus = "cancelled"').encode(), "p"), store,
            now=T0 + timedelta(hours=1), base_url="http://x")
    new = store.recent_changes()[0]
    assert change_text(new, "sv") == "Vantaa, 8.10., inställd"
    store.close()
