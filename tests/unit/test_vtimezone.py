"""The feed's VTIMEZONE over programmes spanning several years, read back by other clients.

A VTIMEZONE covers the programme's whole years (ical.year_span). Its onsets must be read
alike by ical.js (Thunderbird, Nextcloud), vobject (dateutil), icalendar and libical
(Evolution) in every year of the span, not only the first: with the onsets as one
comma-separated RDATE list, ical.js and vobject kept only the first one and read every later
summer an hour late. Sessions are placed a minute and an hour either side of every change too.

Outlook and Exchange read no RDATE in a VTIMEZONE, only one yearly RRULE pair (the sources
are in render/vtimezone.py): the current rules must be written that way, and a reader that
follows Microsoft's documented import rules (tests/fixtures/outlook_zone.py) must place
every session under them at its zoneinfo instant.
Each reader gets the feed with the zone renamed to an id no client knows, so the instants
can only come from our VTIMEZONE, never from a built-in time zone database. The new id is
unique to the feed's content because vobject keeps the first VTIMEZONE it meets for a TZID
for the rest of the process and ignores later ones (VTimezone.transformToNative).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from klash_sync.programme.load import parse
from klash_sync.render.vtimezone import vtimezone_bytes
from klash_sync.service.publish import publish
from klash_sync.state.store import Store
from tests.fixtures import outlook_zone
from tests.fixtures.common import ROOT, programme_text
from tests.fixtures.parsers import read_icalendar, read_icaljs, read_vobject

SYSTEM_PYTHON = "/usr/bin/python3"
LIBICAL_INSTANTS = ROOT / "tests" / "fixtures" / "libical_instants.py"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
LENGTH = timedelta(minutes=30)  # of each session

SPANS = {
    # zone: (first year, last year) of the programme's sessions
    "Europe/Helsinki": (2019, 2028),  # 2019 in the past; the report: 2027-07-10 10:00 read as 08:00Z
    "Europe/Moscow": (2010, 2016),  # DST until 2011, permanent +04 until 2014, then +03
    "America/Sao_Paulo": (2018, 2020),  # southern summer at New Year; DST abolished in 2019
    "Australia/Lord_Howe": (2018, 2021),  # a half-hour DST shift
    "America/New_York": (2005, 2009),  # the US rules changed in 2007
    "Asia/Tokyo": (2020, 2023),  # no DST at all
}


def local_starts(zone: str, first: int, last: int) -> list[datetime]:
    """Local start times over the span: midday and early morning twice a month, the wall
    clock three hours either side of every offset change, and one and two hours and one
    minute either side of it and at it, where that wall time exists once (not in the
    skipped or repeated hour), the session's end too."""
    tz = ZoneInfo(zone)
    starts = [datetime(y, m, d, h) for y in range(first, last + 1) for m in range(1, 13)
              for d in (1, 15) for h in (3, 12)]
    hour = datetime(first, 1, 1, tzinfo=UTC)
    end = datetime(last + 1, 1, 1, tzinfo=UTC)
    near = []
    while hour < end:
        after = hour + timedelta(hours=1)
        if hour.astimezone(tz).utcoffset() != after.astimezone(tz).utcoffset():
            for instant in (hour - timedelta(hours=3), after + timedelta(hours=3)):
                starts.append(instant.astimezone(tz).replace(tzinfo=None))
            change = next(after - timedelta(minutes=m) for m in range(61)
                          if (after - timedelta(minutes=m + 1)).astimezone(tz).utcoffset()
                          == hour.astimezone(tz).utcoffset())
            near += [(change + timedelta(minutes=m)).astimezone(tz).replace(tzinfo=None)
                     for m in (-121, -61, -1, 0, 1, 61, 121)]
        hour = after
    exact = [s for s in starts
             if s.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) == s]
    assert len(exact) == len(starts), "a chosen local time is in a gap"
    return sorted(set(starts) | {s for s in near
                                if unambiguous(s, tz) and unambiguous(s + LENGTH, tz)})


def unambiguous(local: datetime, tz: ZoneInfo) -> bool:
    """The wall time exists and happens once (neither in a gap nor in a repeated hour)."""
    first, second = local.replace(tzinfo=tz, fold=0), local.replace(tzinfo=tz, fold=1)
    return (first.utcoffset() == second.utcoffset()
            and first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == local)


def utc_text(local: datetime, tz: ZoneInfo) -> str:
    return local.replace(tzinfo=tz).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def isolated(body: bytes, zone: str) -> bytes:
    """The feed with ``zone`` renamed to a TZID no client knows and unique to this feed."""
    assert f"TZID:{zone}\r\n".encode() in body
    tzid = f"Klash-Test/{zone}/{hashlib.sha256(body).hexdigest()[:16]}"
    return body.replace(zone.encode(), tzid.encode())


def feed(text: str, store: Store) -> bytes:
    return publish(parse(text.encode(), "p.toml"), store, now=T0,
                   base_url="https://klash.example.fi").feeds["/feeds/programme.ics"].body


def feed_and_expected(zone: str, store: Store) -> tuple[bytes, dict[str, str]]:
    """The programme feed for sessions over the zone's span (the zone renamed), and each
    session's start as zoneinfo gives it."""
    tz = ZoneInfo(zone)
    blocks, expected = [], {}
    for n, start in enumerate(local_starts(zone, *SPANS[zone])):
        end = start + LENGTH
        blocks.append(f'id = "s{n}"\ntitle = "T"\nstart = {start.isoformat()}\nend = {end.isoformat()}')
        expected[f"s{n}@klash.test"] = utc_text(start, tz)
    text = programme_text(*blocks).replace("Europe/Helsinki", zone)
    return isolated(feed(text, store), zone), expected


def read_libical(body: bytes, tmp_path: Path) -> dict[str, dict]:
    path = tmp_path / "feed.ics"
    path.write_bytes(body)
    done = subprocess.run([SYSTEM_PYTHON, str(LIBICAL_INSTANTS), str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return {uid: {"start": start} for uid, start in json.loads(done.stdout).items()}


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "state.sqlite3")
    yield s
    s.close()


@pytest.mark.parametrize("zone", sorted(SPANS))
@pytest.mark.parametrize("reader", ["vobject", "ical.js", "libical", "icalendar"])
def test_every_session_over_several_years_is_read_at_its_zoneinfo_instant(store, tmp_path, zone,
                                                                            reader):
    body, expected = feed_and_expected(zone, store)
    if reader == "vobject":
        events = read_vobject(body)
    elif reader == "ical.js":
        events = read_icaljs(body)
    elif reader == "icalendar":
        events = read_icalendar(body)
    else:
        events = read_libical(body, tmp_path)
    got = {uid: e["start"] for uid, e in events.items()}
    wrong = {uid: (want, got.get(uid)) for uid, want in expected.items() if got.get(uid) != want}
    assert not wrong, f"{len(wrong)} of {len(expected)} sessions read wrong, e.g. {sorted(wrong.items())[:3]}"


def test_the_reported_summer_session_in_the_second_year(store):
    text = programme_text(
        'id = "talvi"\ntitle = "Talvi"\nstart = 2026-01-10T10:00:00\nend = 2026-01-10T11:00:00',
        'id = "kesa"\ntitle = "Kesä"\nstart = 2027-07-10T10:00:00\nend = 2027-07-10T11:00:00',
    )
    body = isolated(feed(text, store), "Europe/Helsinki")
    for reader in (read_icaljs, read_vobject):
        events = reader(body)
        assert events["kesa@klash.test"]["start"] == "2027-07-10T07:00:00Z"
        assert events["talvi@klash.test"]["start"] == "2026-01-10T08:00:00Z"


def test_vtimezone_is_small_and_deterministic():
    """One line per onset: a nine-year Moscow programme stays a few dozen lines."""
    body = vtimezone_bytes("Europe/Moscow", date(2010, 1, 1), date(2018, 1, 1))
    vtimezone_bytes.cache_clear()
    assert vtimezone_bytes("Europe/Moscow", date(2010, 1, 1), date(2018, 1, 1)) == body
    # 2010 and 2011 spring, 2010 autumn, 2014 autumn, plus the observance at the start.
    assert body.count(b"RDATE:") == 5
    assert body.count(b"\r\n") < 40


# Where the zone's current rules begin (Outlook knows no other), for the zones that have them.
OUTLOOK_FROM = {
    "Europe/Helsinki": 2019,  # EU rules since 1996
    "America/New_York": 2007,  # the rules of 2007
    "Australia/Lord_Howe": 2018,
    "Asia/Tokyo": 2020,
}


@pytest.mark.parametrize("zone", sorted(OUTLOOK_FROM))
def test_outlook_places_every_session_under_the_current_rules(store, zone):
    """Read as Microsoft documents Outlook's import (RRULE pair with the largest DTSTART,
    RDATE ignored): every session from the current rules' first year is at its instant."""
    body, expected = feed_and_expected(zone, store)
    tzid = next(str(c["TZID"]) for c in Calendar.from_ical(body).walk("VTIMEZONE"))
    starts = local_starts(zone, *SPANS[zone])
    outlook = outlook_zone.placer(body, tzid)
    wrong = {}
    for n, local in enumerate(starts):
        if local.year < OUTLOOK_FROM[zone]:
            continue
        got = outlook(local).strftime("%Y-%m-%dT%H:%M:%SZ")
        if got != expected[f"s{n}@klash.test"]:
            wrong[local.isoformat()] = (expected[f"s{n}@klash.test"], got)
    assert not wrong, f"{len(wrong)} sessions misplaced, e.g. {sorted(wrong.items())[:3]}"


@pytest.mark.parametrize(("first", "last"), [(2019, 2029), (2026, 2028), (2027, 2029)])
def test_helsinki_is_the_yearly_pair_outlook_writes(first, last):
    """The feed's span (2019..2028) and an invitation's (its year and the next): one
    STANDARD and one DAYLIGHT, each with the EU rule as RRULE and no RDATE, the DTSTARTs
    real onsets at the local time before the change."""
    body = vtimezone_bytes("Europe/Helsinki", date(first, 1, 1), date(last, 1, 1))
    zone = Calendar.from_ical(b"BEGIN:VCALENDAR\r\n" + body + b"END:VCALENDAR\r\n")
    parts = zone.walk("VTIMEZONE")[0].subcomponents
    assert [p.name for p in parts] == ["STANDARD", "DAYLIGHT"]
    assert b"RDATE" not in body
    standard, daylight = parts
    assert standard["RRULE"].to_ical() == b"FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10"
    assert daylight["RRULE"].to_ical() == b"FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3"
    # In force when the span starts: last October's change, then this March's.
    assert standard.decoded("DTSTART") == max(
        datetime(first - 1, 10, d, 4) for d in range(25, 32)
        if datetime(first - 1, 10, d).weekday() == 6)
    assert daylight.decoded("DTSTART") == max(
        datetime(first, 3, d, 3) for d in range(25, 32) if datetime(first, 3, d).weekday() == 6)
    assert (standard["TZOFFSETFROM"].to_ical(), standard["TZOFFSETTO"].to_ical()) == (
        "+0300", "+0200")
    assert (daylight["TZOFFSETFROM"].to_ical(), daylight["TZOFFSETTO"].to_ical()) == (
        "+0200", "+0300")


def test_past_rules_stay_rdates_before_the_current_pair():
    """New York over 2005..2009: the rules of 2007 as the RRULE pair with the largest
    DTSTARTs (what Outlook keeps), the earlier April/October onsets as RDATEs."""
    body = vtimezone_bytes("America/New_York", date(2005, 1, 1), date(2011, 1, 1))
    zone = Calendar.from_ical(b"BEGIN:VCALENDAR\r\n" + body + b"END:VCALENDAR\r\n")
    parts = zone.walk("VTIMEZONE")[0].subcomponents
    rules = {p.name: p for p in parts if "RRULE" in p}
    assert rules["DAYLIGHT"]["RRULE"].to_ical() == b"FREQ=YEARLY;BYDAY=2SU;BYMONTH=3"
    assert rules["STANDARD"]["RRULE"].to_ical() == b"FREQ=YEARLY;BYDAY=1SU;BYMONTH=11"
    for name, rule in rules.items():
        others = [p for p in parts if p.name == name and p is not rule]
        assert others
        assert all("RDATE" in p and "RRULE" not in p for p in others)
        assert all(p.decoded("DTSTART") < rule.decoded("DTSTART") for p in others)
