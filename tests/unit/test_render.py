"""iCalendar rendering: identity, revisions, determinism, time zones, read back by other parsers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
import pytest

from klash_sync.programme.load import load, parse
from klash_sync.service.publish import publish
from klash_sync.state.store import Store
from tests.fixtures.common import SHIPPED, programme_text
from tests.fixtures.parsers import read_icaljs, read_vobject

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
BASE = "https://klash.example.fi"

TIMED = programme_text(
    # Summer time (EEST, +03:00): 10:00 local is 07:00 UTC.
    'id = "kesa"\ntitle = "Kesä"\nmunicipality = "Vantaa"\nlocation = "Tikkurila"\n'
    'start = 2019-06-15T10:00:00\nend = 2019-06-15T12:30:00\nmentors = ["ulla-nord"]',
    # After DST ended on 27.10.2019 (EET, +02:00): 10:00 local is 08:00 UTC.
    'id = "syksy"\ntitle = "Syksy"\nmunicipality = "Joensuu"\n'
    'start = 2019-11-05T10:00:00\nend = 2019-11-05T11:00:00\nmentors = ["milja-kopsi"]',
    # Given with an offset: the instant is kept (07:00 UTC), shown in Helsinki time.
    'id = "offset"\ntitle = "Offset"\n'
    'start = 2019-10-08T09:00:00+02:00\nend = 2019-10-08T10:00:00+02:00\nmentors = ["ulla-nord"]',
    'id = "koko"\ntitle = "Koko päivä"\ndate = 2019-10-15\nend_date = 2019-10-16\nmentors = ["ulla-nord"]',
)

EXPECTED = {
    "kesa@klash.test": ("2019-06-15T07:00:00Z", "2019-06-15T09:30:00Z"),
    "syksy@klash.test": ("2019-11-05T08:00:00Z", "2019-11-05T09:00:00Z"),
    "offset@klash.test": ("2019-10-08T07:00:00Z", "2019-10-08T08:00:00Z"),
    "koko@klash.test": ("2019-10-15", "2019-10-17"),
}


def snapshot_of(text: str, store: Store, now: datetime = T0):
    return publish(parse(text.encode(), "p.toml"), store, now=now, base_url=BASE)


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "state.sqlite3")
    yield s
    s.close()


def test_unchanged_programme_renders_byte_identical(store, tmp_path):
    first = snapshot_of(TIMED, store)
    again = snapshot_of(TIMED, store, now=T0 + timedelta(days=3))
    assert {p: f.body for p, f in first.feeds.items()} == {p: f.body for p, f in again.feeds.items()}
    assert {p: f.etag for p, f in first.feeds.items()} == {p: f.etag for p, f in again.feeds.items()}
    # A second store that saw the programme at the same moment renders the same bytes.
    other = Store(tmp_path / "other.sqlite3")
    assert snapshot_of(TIMED, other).feeds["/feeds/programme.ics"].body == \
        first.feeds["/feeds/programme.ics"].body
    other.close()


def _event(body: bytes, uid: str) -> icalendar.Event:
    cal = icalendar.Calendar.from_ical(body)
    return next(e for e in cal.walk("VEVENT") if str(e["UID"]) == uid)


def test_reschedule_keeps_uid_and_raises_sequence(store):
    first = snapshot_of(TIMED, store)
    moved = TIMED.replace("2019-11-05T10:00:00", "2019-11-06T10:00:00").replace(
        "2019-11-05T11:00:00", "2019-11-06T11:00:00")
    later = T0 + timedelta(hours=5)
    second = snapshot_of(moved, store, now=later)
    before = _event(first.feeds["/feeds/programme.ics"].body, "syksy@klash.test")
    after = _event(second.feeds["/feeds/programme.ics"].body, "syksy@klash.test")
    assert int(after["SEQUENCE"]) == int(before["SEQUENCE"]) + 1
    assert after["DTSTAMP"].dt == later
    assert after["LAST-MODIFIED"].dt == later
    assert after["CREATED"].dt == before["CREATED"].dt == T0
    # Sessions that did not change keep their revision and bytes.
    assert second.events["kesa"] == first.events["kesa"]
    # Rescheduling back is another change, not a return to the old SEQUENCE.
    third = snapshot_of(TIMED, store, now=later + timedelta(hours=1))
    assert third.revisions["syksy"].sequence == before["SEQUENCE"] + 2


def test_removed_session_that_returns_keeps_rising_sequence(store):
    first = snapshot_of(TIMED, store)
    without = TIMED.split('[[sessions]]\nid = "koko"')[0]
    snapshot_of(without, store, now=T0 + timedelta(hours=1))
    back = snapshot_of(TIMED, store, now=T0 + timedelta(hours=2))
    assert back.revisions["koko"].sequence == first.revisions["koko"].sequence + 1
    assert back.happened["koko"] == "restored"


def test_cancelled_session_stays_with_status_cancelled(store):
    cancelled = TIMED.replace('title = "Kesä"', 'title = "Kesä"\nstatus = "cancelled"')
    snap = snapshot_of(cancelled, store)
    for path in ("/feeds/programme.ics", "/feeds/mentors/ulla-nord.ics",
                 "/feeds/municipalities/vantaa.ics"):
        event = _event(snap.feeds[path].body, "kesa@klash.test")
        assert event["STATUS"] == "CANCELLED"
        assert "PERUTTU" in str(event["SUMMARY"])
        assert not event.walk("VALARM"), "no reminder for a cancelled session"
        assert event["TRANSP"] == "TRANSPARENT", "a cancelled session must not make the mentor busy"
    assert _event(snap.feeds["/feeds/programme.ics"].body, "syksy@klash.test")["TRANSP"] == "OPAQUE"


def test_feed_has_vtimezone_for_every_tzid_and_calendar_properties(store):
    snap = snapshot_of(TIMED, store)
    cal = icalendar.Calendar.from_ical(snap.feeds["/feeds/programme.ics"].body)
    assert cal.get_missing_tzids() == set()
    assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Europe/Helsinki"]
    assert cal["X-WR-CALNAME"] == "Testiohjelma"
    assert cal["X-WR-TIMEZONE"] == "Europe/Helsinki"
    assert cal["REFRESH-INTERVAL"].dt == timedelta(hours=1)
    assert str(cal["X-PUBLISHED-TTL"].to_ical(), "ascii") == "PT1H"
    assert "METHOD" not in cal, "METHOD:PUBLISH would need an ORGANIZER in every event (RFC 5546)"
    for event in cal.walk("VEVENT"):
        # Nothing that makes a scheduling server send e-mail.
        assert "ATTENDEE" not in event
        assert "ORGANIZER" not in event
        assert event["URL"].startswith(BASE + "/#")
        assert [a["TRIGGER"].dt for a in event.walk("VALARM")] == [-timedelta(days=1)]


def test_reminders_overridable_per_session(store):
    text = TIMED.replace('title = "Kesä"', 'title = "Kesä"\nreminders = ["PT2H", "PT15M"]')
    text = text.replace('title = "Syksy"', 'title = "Syksy"\nreminders = []')
    snap = snapshot_of(text, store)
    body = snap.feeds["/feeds/programme.ics"].body
    assert [a["TRIGGER"].dt for a in _event(body, "kesa@klash.test").walk("VALARM")] == [
        -timedelta(hours=2), -timedelta(minutes=15)]
    assert _event(body, "syksy@klash.test").walk("VALARM") == []


def test_mentor_and_municipality_feeds_hold_the_right_sessions(store):
    snap = snapshot_of(TIMED, store)
    assert snap.feeds["/feeds/mentors/milja-kopsi.ics"].sessions == ("syksy",)
    assert set(snap.feeds["/feeds/mentors/ulla-nord.ics"].sessions) == {"kesa", "offset", "koko"}
    # A municipality's feed has its own sessions plus the joint ones (no municipality).
    assert set(snap.feeds["/feeds/municipalities/vantaa.ics"].sessions) == {"kesa", "offset", "koko"}
    assert set(snap.feeds["/feeds/municipalities/joensuu.ics"].sessions) == {"syksy", "offset", "koko"}


@pytest.mark.parametrize("reader", [read_vobject, read_icaljs], ids=["vobject", "ical.js"])
def test_other_parsers_read_the_same_instants(store, reader):
    snap = snapshot_of(TIMED, store)
    events = reader(snap.feeds["/feeds/programme.ics"].body)
    assert {uid: (e["start"], e["end"]) for uid, e in events.items()} == EXPECTED
    assert events["kesa@klash.test"]["summary"] == "Kesä"
    assert events["kesa@klash.test"]["location"] == "Tikkurila"
    assert "Mentori: Ulla Nord" in events["kesa@klash.test"]["description"]


@pytest.mark.parametrize("reader", [read_vobject, read_icaljs], ids=["vobject", "ical.js"])
def test_shipped_programme_read_back_by_other_parsers(store, reader):
    programme = load(SHIPPED)
    snap = publish(programme, store, now=T0, base_url=BASE)
    events = reader(snap.feeds["/feeds/programme.ics"].body)
    assert len(events) == 5
    for session in programme.sessions:
        event = events[f"{session.id}@{programme.programme.uid_domain}"]
        assert event["start"] == session.date.isoformat()
        assert event["end"] == (session.date + timedelta(days=1)).isoformat()
        assert event["summary"] == session.title
        assert event["status"] == "CONFIRMED"
        assert event["sequence"] == snap.revisions[session.id].sequence
        assert session.description in event["description"]


ZONES = {
    # zone: local start times around its transitions in 2019 (none in a gap or an overlap)
    "Europe/Helsinki": ["2019-03-31T02:30:00", "2019-03-31T04:30:00", "2019-10-27T02:30:00",
                        "2019-10-27T04:30:00", "2019-07-01T12:00:00", "2019-12-31T23:30:00"],
    "America/New_York": ["2019-03-10T01:30:00", "2019-03-10T03:30:00", "2019-11-03T00:30:00",
                         "2019-11-03T02:30:00"],
    "Australia/Lord_Howe": ["2019-04-07T01:00:00", "2019-04-07T02:30:00", "2019-10-06T01:30:00",
                            "2019-10-06T03:00:00"],
    "America/Sao_Paulo": ["2019-02-16T22:00:00", "2019-02-17T01:00:00", "2019-11-03T12:00:00"],
}


@pytest.mark.parametrize("zone", sorted(ZONES))
@pytest.mark.parametrize("reader", [read_vobject, read_icaljs], ids=["vobject", "ical.js"])
def test_instants_around_dst_transitions_in_several_zones(store, zone, reader):
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    blocks = []
    expected = {}
    for n, local in enumerate(ZONES[zone]):
        start = datetime.fromisoformat(local)
        end = start + timedelta(minutes=20)
        blocks.append(f'id = "s{n}"\ntitle = "T"\nstart = {start.isoformat()}\nend = {end.isoformat()}')
        expected[f"s{n}@klash.test"] = tuple(
            t.replace(tzinfo=tz).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in (start, end))
    text = programme_text(*blocks).replace("Europe/Helsinki", zone)
    events = reader(snapshot_of(text, store).feeds["/feeds/programme.ics"].body)
    assert {uid: (e["start"], e["end"]) for uid, e in events.items()} == expected


def test_content_hash_of_rendering_equals_hash_of_stored_copy(store):
    """Syncs compare the hash we keep from rendering with one computed from a server's copy."""
    from klash_sync.deliver.caldav.sync import desired_for
    from klash_sync.render.normalise import inspect
    from tests.fixtures.hostile import hostile_programme

    for text in (TIMED, hostile_programme()[0], SHIPPED.read_text()):
        programme = parse(text.encode(), "p.toml")
        snap = publish(programme, store, now=T0, base_url=BASE)
        for mentor in programme.mentors:
            for want in desired_for(snap, mentor.id).values():
                assert inspect(want.body, programme.programme.uid_domain).hash == want.hash


def test_reusing_the_previous_snapshot_renders_the_same_bytes(store, tmp_path):
    first = snapshot_of(TIMED, store)
    moved = TIMED.replace("2019-06-15T10:00:00", "2019-06-16T10:00:00").replace(
        "2019-06-15T12:30:00", "2019-06-16T12:30:00")
    later = T0 + timedelta(hours=1)
    reused = publish(parse(moved.encode(), "p.toml"), store, now=later, base_url=BASE, previous=first)
    fresh_store = Store(tmp_path / "fresh.sqlite3")
    snapshot_of(TIMED, fresh_store)
    fresh = publish(parse(moved.encode(), "p.toml"), fresh_store, now=later, base_url=BASE)
    assert {p: f.body for p, f in reused.feeds.items()} == {p: f.body for p, f in fresh.feeds.items()}
    assert reused.events["syksy"] is first.events["syksy"]  # reused, not rendered again
    fresh_store.close()


def test_feeds_kept_from_the_previous_snapshot_are_the_feeds_a_full_render_gives(store):
    """A reload rebuilds only the feeds an edit touched; the rest must be exactly what a
    render from scratch gives (bytes, ETag, Last-Modified), and the touched ones change."""
    first = snapshot_of(TIMED, store)
    edited = TIMED.replace("start = 2019-11-05T10:00:00", "start = 2019-11-05T09:00:00")
    parsed = parse(edited.encode(), "p.toml")
    reloaded = publish(parsed, store, now=T0 + timedelta(hours=1), base_url=BASE, previous=first)
    scratch = publish(parsed, store, now=T0 + timedelta(hours=2), base_url=BASE)
    assert reloaded.feeds.keys() == scratch.feeds.keys()
    kept = changed = 0
    for path, feed in reloaded.feeds.items():
        full = scratch.feeds[path]
        assert (feed.body, feed.etag, feed.last_modified, feed.sessions) == \
            (full.body, full.etag, full.last_modified, full.sessions), path
        if feed is first.feeds.get(path):
            kept += 1
            assert "syksy" not in feed.sessions
        else:
            changed += 1
            assert "syksy" in feed.sessions
    # Ulla's and Vantaa's feeds were kept; Milja's, Joensuu's and the whole one rebuilt.
    assert kept >= 2
    assert changed >= 3
