"""Hostile programme text: escaped safely, one VEVENT per session, nothing injected, also under -O.

Text that cannot be rendered safely on one line (line breaks and control characters in
titles, names and places; anything but a slug in ids) is refused by validation with a
clear message; everything else is accepted and must come back unchanged through three
parsers: icalendar, vobject and ical.js.
"""

from __future__ import annotations

import subprocess
import sys

import icalendar
import pytest

from tests.fixtures.common import ROOT, run_cli
from tests.fixtures.hostile import NASTY_LINE, expected_description, hostile_programme, toml_str
from tests.fixtures.parsers import read_icaljs, read_vobject

EXPECTED_PROPERTIES = {
    "UID", "DTSTAMP", "CREATED", "LAST-MODIFIED", "SEQUENCE", "SUMMARY", "DTSTART", "DTEND",
    "LOCATION", "DESCRIPTION", "STATUS", "CATEGORIES", "TRANSP", "CLASS", "X-KLASH-SYNC",
}  # no URL: without KLASH_PUBLIC_URL, events carry no link to a loopback page


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    text, ids = hostile_programme()
    path = tmp / "hostile.toml"
    path.write_text(text, encoding="utf-8")
    env = {"KLASH_STATE_DIR": str(tmp / "state")}
    # `export` to standard output changes nothing, so the revisions both renderings use are
    # recorded once by a writer first (as the running service would have done).
    recorded = run_cli("export", "--all", str(tmp / "site"), "--programme", str(path), env=env)
    assert recorded.code == 0, recorded.err
    normal = run_cli("export", "--programme", str(path), env=env)
    assert normal.code == 0, normal.err
    optimised = subprocess.run(
        [sys.executable, "-O", "-m", "klash_sync", "export", "--programme", str(path)],
        cwd=ROOT, capture_output=True, timeout=60, check=False,
        env={"KLASH_STATE_DIR": str(tmp / "state"), "PATH": "/usr/bin:/bin"},
    )
    assert optimised.returncode == 0, optimised.stderr
    return normal.raw, optimised.stdout, ids


def test_python_O_renders_the_same_bytes(exported):
    normal, optimised, _ = exported
    assert normal == optimised


@pytest.mark.parametrize("which", ["normal", "optimised"])
def test_exactly_one_vevent_per_session_and_no_property_injected(exported, which):
    body = exported[0] if which == "normal" else exported[1]
    _, _, ids = exported
    lines = body.split(b"\r\n")
    assert lines.count(b"BEGIN:VEVENT") == lines.count(b"END:VEVENT") == len(ids)
    assert sum(1 for line in lines if line.startswith(b"UID:")) == len(ids)
    assert not any(line.startswith((b"ATTENDEE", b"ORGANIZER", b"METHOD:REQUEST")) for line in lines)
    cal = icalendar.Calendar.from_ical(body)
    events = cal.walk("VEVENT")
    assert sorted(str(e["UID"]) for e in events) == sorted(f"{i}@klash.test" for i in ids)
    for event in events:
        assert set(event.keys()) == EXPECTED_PROPERTIES
        assert [c.name for c in event.subcomponents] == ["VALARM"]
    for line in lines:
        assert len(line) <= 75, "every content line is folded"
        assert b"\r" not in line
        assert b"\n" not in line


@pytest.mark.parametrize("reader", [read_vobject, read_icaljs], ids=["vobject", "ical.js"])
def test_text_round_trips_through_other_parsers(exported, reader):
    events = reader(exported[0])
    for n, line in enumerate(NASTY_LINE):
        event = events[f"s{n}@klash.test"]
        assert event["summary"] == line
        assert event["location"] == line
        assert event["description"] == expected_description(n)


def test_calendar_name_round_trips(exported):
    cal = icalendar.Calendar.from_ical(exported[0])
    assert str(cal["NAME"]) == NASTY_LINE[0]  # RFC 7986 TEXT, unescaped by the parser
    # X-WR-CALNAME is not known to parsers as TEXT, so it must carry the TEXT escaping itself.
    raw = next(line for line in exported[0].split(b"\r\n") if line.startswith(b"X-WR-CALNAME:"))
    assert raw == b"X-WR-CALNAME:" + icalendar.vText(NASTY_LINE[0]).to_ical()


REFUSED = [
    ("title", "two\nlines", "one line"),
    ("title", "carriage\rreturn", "one line"),
    ("title", "bell\x07", "control character"),
    ("location", "tab\there", "control character"),
    ("municipality", "esc\x1b[31m", "control character"),
    ("description", "nul \x00 byte", "control character"),
    ("description", "del \x7f char", "control character"),
    ("title", "", "must not be empty"),
    ("title", "   ", "must not be empty"),
]


@pytest.mark.parametrize(("field", "value", "words"), REFUSED, ids=[f"{r[0]}-{r[2]}" for r in REFUSED])
def test_unsafe_text_is_refused_with_a_clear_message(write_programme, field, value, words):
    fields = {"title": "T", "location": "L", "municipality": "M", "description": "D"}
    fields[field] = value
    body = "".join(f"{k} = {toml_str(v)}\n" for k, v in fields.items())
    path = write_programme('[programme]\nname = "P"\nuid_domain = "klash.test"\norganiser = "O"\n'
                           f'[[sessions]]\nid = "s"\n{body}date = 2019-10-01\n')
    result = run_cli("validate", "--programme", str(path))
    assert result.code == 2
    assert "Traceback" not in result.err
    assert f"field '{field}'" in result.err, result.err
    assert words in result.err, result.err


HOSTILE_IDS = ["a/b", "..", "../x", "x%2f", "a\nb", "ä", "Vantaa", "a b", "-x", "x-", "x--y",
               "x" * 65, "x.ics", "x\\y", "", "%00"]


@pytest.mark.parametrize("ident", HOSTILE_IDS)
def test_hostile_session_ids_are_refused(write_programme, ident):
    path = write_programme('[programme]\nname = "P"\nuid_domain = "klash.test"\norganiser = "O"\n'
                           f'[[sessions]]\nid = {toml_str(ident)}\ntitle = "T"\ndate = 2019-10-01\n')
    result = run_cli("validate", "--programme", str(path))
    assert result.code == 2, ident
    assert "field 'id'" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("ident", HOSTILE_IDS[:6])
def test_hostile_mentor_ids_are_refused(write_programme, ident):
    path = write_programme('[programme]\nname = "P"\nuid_domain = "klash.test"\norganiser = "O"\n'
                           f'[[mentors]]\nid = {toml_str(ident)}\nname = "N"\n')
    result = run_cli("validate", "--programme", str(path))
    assert result.code == 2
    assert "field 'id'" in result.err


def test_hrefs_stay_inside_the_collection():
    from klash_sync.deliver.caldav.calendar import _inside
    from klash_sync.deliver.caldav.plan import safe_name

    col = "http://h/dav/cal/"
    assert _inside(col, "/dav/cal/a.ics")
    for bad in ("/dav/cal/", "/dav/cal", "/dav/cal/../other/a.ics", "/dav/cal/%2e%2e/a.ics",
                "/dav/cal/sub/a.ics", "/dav/other/a.ics", "/dav/cal/./", "/dav/cal/%00",
                "http://h/dav/cal/../../x.ics", "/dav/cal/..", "/dav/cal/a.ics/.."):
        assert not _inside(col, bad), bad
    for uid in HOSTILE_IDS:
        assert _inside(col, "/dav/cal/" + safe_name(uid + "@x")), uid
