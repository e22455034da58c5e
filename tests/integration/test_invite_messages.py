"""Invitation e-mails right to the letter, read by decoders other than the one that wrote them.

Messages are made by the real planner and builder from a rendered programme
(tests/fixtures/invite_messages.py) and read back by Python's ``email`` (policy default),
by postal-mime (a Node mail parser), by html-validate, and the calendar part by libical
(with its iTIP restriction check), ical.js and icalendar. Covered: every Subject decodes
to exactly the title written (Finnish, Swedish, emoji, quotes, long words, 200
characters), in lines of at most 78 characters and encoded words of at most 75; the
structure Outlook and Google send (text, HTML and calendar as alternatives, the .ics
attached); HTML that validates, is escaped and shows the calendar's start time; people
named by name, never by id; "cancelled" said once.
"""

from __future__ import annotations

import email
import re
from datetime import date, datetime
from email.message import EmailMessage
from email.policy import default
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from tests.fixtures.hostile import toml_str
from tests.fixtures.invite_helpers import ADDRESSES, header, read_itip, session, timed
from tests.fixtures.invite_messages import (
    BASE_URL,
    html_validate,
    libical,
    messages,
    postal_mime,
    sent_record,
    snapshot_of,
)

HELSINKI = ZoneInfo("Europe/Helsinki")
WEEKDAYS = ("ma", "ti", "ke", "to", "pe", "la", "su")
LONG = ("Kuntien yhteinen työpaja: " + "äänekoski ÅÄÖ och väli 🎉 'x' \"y\" " * 8)[:200].rstrip()
TITLES = {
    "finnish": "Työpajan ääkköset ja öljylähde",
    "swedish": "Mentorträff i Jakobstad – höstens första för alla kommuner",
    "emoji": "Kick-off 🚀 ja 🎉 juhla a b c",
    "quotes": "Aloitus \"Tulevaisuus\" ja 'lainaus' – «tärkeä»",
    "long-word": "Lentokonesuihkuturbiinimoottoriapumekaanikkoaliupseerioppilastyöpajaääni ja sana",
    "letters": "Ä b Ö c Å d é e ü f",
    "spaces": "Kaksi  väliä ja  kolme   tässä",
    "lookalike": "Meeting =?utf-8?q?x?= for all",
    "ascii": "Kick-off for all municipalities in the programme this year",
    "two-hundred": LONG,
}


def titled(sid: str, when: str, mentors: list[str], title: str, **extra: str) -> str:
    """A session whose title may hold any character (quotes too)."""
    return session(sid, when, mentors, title="TITLE", **extra).replace(
        'title = "TITLE"', f"title = {toml_str(title)}")


def title_programme() -> str:
    return header() + "".join(
        titled(sid, timed(f"2027-07-{n + 1:02d}", "10:00", "12:00"), ["milja-kopsi"], title)
        for n, (sid, title) in enumerate(TITLES.items()))


def part(msg: EmailMessage, content_type: str) -> EmailMessage:
    return next(p for p in msg.walk() if p.get_content_type() == content_type)  # type: ignore[misc]


def test_every_subject_decodes_to_exactly_the_title_in_python_and_in_node(tmp_path):
    assert len(LONG) == 200
    built = {inv.session: msg for inv, msg in messages(snapshot_of(title_programme(), tmp_path))}
    assert set(built) == set(TITLES)
    wrong = {}
    for n, (sid, title) in enumerate(TITLES.items()):
        day = date(2027, 7, n + 1)
        expected = (f"Kutsu: {title}, {WEEKDAYS[day.weekday()]} {day.day}.7.2027 klo 10.00–12.00"
                    " – Testiohjelma")
        raw = built[sid].as_bytes()
        head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")  # headers are ASCII
        python = email.message_from_bytes(raw, policy=default)
        node = postal_mime(raw)
        got = {"python": str(python["Subject"]), "node": node["subject"],
               "long lines": [x for x in head.split("\r\n") if len(x) > 78],
               "long words": [w for w in re.findall(r"=\?[^?]+\?[qQbB]\?[^?]*\?=", head) if len(w) > 75]}
        if got != {"python": expected, "node": expected, "long lines": [], "long words": []}:
            wrong[sid] = got
        assert node["to"] == [{"name": "Milja Köpsi", "address": "milja@example.test"}]
        assert str(python["To"]) == "Milja Köpsi <milja@example.test>"
    assert wrong == {}


def two_mentor_programme(title: str = "Aloitus <b>&</b> \"lainaus\"", status: str = "confirmed") -> str:
    return (header()
            + titled("summer", timed("2027-07-02", "10:00", "12:00"),
                     ["milja-kopsi", "ulla-nord", "pekka-puu"], title, status=status,
                     location="Vantaa <talo> & co")
            + session("allday", "date = 2027-03-10", ["ulla-nord"], title="Koko päivä"))


def test_each_message_is_text_html_and_calendar_as_alternatives_with_the_ics_attached(tmp_path):
    for inv, msg in messages(snapshot_of(two_mentor_programme(), tmp_path)):
        parsed = email.message_from_bytes(msg.as_bytes(), policy=default)
        assert parsed.get_content_type() == "multipart/mixed"
        alternative, attachment = parsed.iter_parts()
        assert [p.get_content_type() for p in alternative.iter_parts()] == [
            "text/plain", "text/html", "text/calendar"]
        calendar = part(parsed, "text/calendar")
        assert calendar.get_param("method") == inv.method
        assert attachment.get_content_type() == "application/ics"
        assert attachment.get_filename() == "invite.ics"
        assert attachment.get_payload(decode=True) == calendar.get_payload(decode=True)
        assert parsed["MIME-Version"] == "1.0"
        assert [p["MIME-Version"] for p in parsed.walk()][1:] == [None] * 5


def test_the_html_validates_is_escaped_and_shows_the_calendars_start_and_links(tmp_path):
    answer = f"{BASE_URL}/rsvp/milja-kopsi.kick-off.AAAAAAAAAAAAAAAAAAAAAA"  # the answer page (web/rsvp)
    built = messages(snapshot_of(two_mentor_programme(), tmp_path), page=BASE_URL, public_feeds=True,
                     answer=answer)
    assert built
    for inv, msg in built:
        parsed = email.message_from_bytes(msg.as_bytes(), policy=default)
        html = part(parsed, "text/html").get_content()
        verdict = html_validate(html)
        assert verdict["valid"], verdict["messages"]
        asks = inv.method != "CANCEL"
        assert (f'href="{answer}?answer=declined"' in html) == asks
        assert (f"{answer}?answer=accepted" in part(parsed, "text/plain").get_content()) == asks
        assert "<b>" not in html  # the organiser's text, escaped
        assert "<talo>" not in html
        assert "Aloitus &lt;b&gt;&amp;&lt;/b&gt; &quot;lainaus&quot;" in html or inv.session == "allday"
        assert 'lang="fi"' in html
        [event] = Calendar.from_ical(part(parsed, "text/calendar").get_payload(decode=True)).walk("VEVENT")
        start = event.decoded("DTSTART")
        shown = re.search(r'<time datetime="([^"]+)">([^<]+)</time>', html)
        assert shown is not None
        if isinstance(start, datetime):
            local = start.astimezone(HELSINKI)
            assert datetime.fromisoformat(shown.group(1)) == start
            assert f"klo {local:%H.%M}" in shown.group(2)
            assert f"{local.day}.{local.month}.{local.year}" in shown.group(2)
        else:
            assert shown.group(1) == start.isoformat()
        text = part(parsed, "text/plain").get_content()
        for fact in (str(event["SUMMARY"]), str(event.get("LOCATION", ""))):
            assert fact in text
        assert f'href="{BASE_URL}/#{inv.session}"' in html
        assert f'href="{BASE_URL}"' in html
        assert f'href="{BASE_URL}/feeds/mentors/{inv.mentor}.ics"' in html
        others = [name for name, address in inv.attendees if address != inv.address]
        for name in others:
            assert name in html
            assert name in text


def test_people_are_named_by_name_and_cancelled_is_said_once(tmp_path):
    first = snapshot_of(two_mentor_programme(title="Syyskokous"), tmp_path / "a")
    sent = {inv.key: sent_record(inv) for inv, _ in messages(first)}
    # the session is called off, and Ulla leaves the programme altogether
    without_ulla = two_mentor_programme(title="Syyskokous", status="cancelled")
    without_ulla = without_ulla.replace('name = "Ulla Nord"', 'name = "Ulla Nord"\n# left')
    text = without_ulla.split("[[mentors]]")
    text = "[[mentors]]".join(t for t in text if 'id = "ulla-nord"' not in t)
    text = text.replace('"milja-kopsi", "ulla-nord", "pekka-puu"', '"milja-kopsi", "pekka-puu"')
    text = text.replace('mentors = ["ulla-nord"]', "mentors = []")
    second = snapshot_of(text, tmp_path / "a")
    built = {inv.key: msg for inv, msg in messages(second, sent)}
    milja, ulla = ADDRESSES["milja-kopsi"], ADDRESSES["ulla-nord"]
    assert set(built) == {(milja, "summer"), (ulla, "summer"), (ulla, "allday")}  # per address
    for msg in built.values():
        raw = msg.as_bytes()
        parsed = email.message_from_bytes(raw, policy=default)
        words = " ".join([str(parsed["Subject"]), str(parsed["To"]),
                          part(parsed, "text/plain").get_content(), part(parsed, "text/html").get_content(),
                          part(parsed, "text/calendar").get_payload(decode=True).decode()])
        assert "ulla-nord" not in words, words
        assert "milja-kopsi" not in words, words
        if "ulla" in str(parsed["To"]):  # removed from the programme: her address, never her id
            assert str(parsed["To"]) == ADDRESSES["ulla-nord"]
        subject = str(parsed["Subject"])
        assert subject.count("Peruttu") + subject.count("PERUTTU") == 1, subject
        assert subject.startswith("Peruttu: ")
    cancel = email.message_from_bytes(built[(milja, "summer")].as_bytes(), policy=default)
    assert str(cancel["Subject"]) == "Peruttu: Syyskokous – Testiohjelma"
    assert str(cancel["To"]) == "Milja Köpsi <milja@example.test>"


def test_every_calendar_part_passes_libical_icaljs_and_icalendar(tmp_path):
    first = snapshot_of(two_mentor_programme(), tmp_path / "a")
    made = messages(first)
    sent = {inv.key: sent_record(inv) for inv, _ in made}
    changed = two_mentor_programme(status="cancelled").replace('["ulla-nord"]', "[]")
    made += messages(snapshot_of(changed, tmp_path / "a"), sent)
    assert {inv.method for inv, _ in made} == {"REQUEST", "CANCEL"}
    bodies = {}
    for n, (inv, msg) in enumerate(made):
        parsed = email.message_from_bytes(msg.as_bytes(), policy=default)
        [alternative, _] = parsed.iter_parts()
        assert [p.get_content_type() for p in alternative.iter_parts()] == [
            "text/plain", "text/html", "text/calendar"]
        body = part(parsed, "text/calendar").get_payload(decode=True)
        bodies[f"{n}-{inv.method}-{inv.session}"] = body
        itip = read_itip(body)  # ical.js
        assert itip["method"] == inv.method
        assert [e["uid"] for e in itip["events"]] == [f"{inv.session}@klash.test"]
        cal = Calendar.from_ical(body)  # icalendar
        assert str(cal["METHOD"]) == inv.method
        assert len(cal.walk("VEVENT")) == 1
    assert {k: v for k, v in libical(bodies, tmp_path / "ics").items() if v} == {}


@pytest.mark.parametrize("title", list(TITLES.values())[:3])
def test_the_plain_text_and_html_carry_the_title_exactly(tmp_path, title):
    text = header() + titled("s", timed("2027-07-02", "10:00", "12:00"), ["milja-kopsi"], title)
    [(_, msg)] = messages(snapshot_of(text, tmp_path))
    node = postal_mime(msg.as_bytes())
    assert title in node["text"]
    assert title.replace('"', "&quot;").replace("'", "&#x27;") in node["html"]


def test_each_mentor_reads_their_invitation_in_their_own_language_one_language_per_message(tmp_path):
    text = two_mentor_programme().replace('invite = true\n', 'invite = true\nlanguage = "sv"\n', 1)
    text = text.replace('name = "Ulla Nord"', 'name = "Ulla Nord"\nlanguage = "en"')
    first = snapshot_of(text, tmp_path / "a")
    assert [m.language for m in first.programme.mentors[:2]] == ["sv", "en"]
    made = messages(first, page=BASE_URL, public_feeds=True)
    seen: dict[str, set[str]] = {}
    for inv, msg in made:
        parsed = email.message_from_bytes(msg.as_bytes(), policy=default)
        subject, plain = str(parsed["Subject"]), part(parsed, "text/plain").get_content()
        html = part(parsed, "text/html").get_content()
        seen.setdefault(inv.mentor, set()).add(subject.split(":")[0])
        if inv.mentor == "milja-kopsi":
            assert '<html lang="sv">' in html
            assert "Tid:" in plain
        else:
            assert '<html lang="en">' in html
            assert "When:" in plain
        if inv.session == "summer":  # a timed session: the time and its zone in the mentor's words
            zone = {"milja-kopsi": "kl. 10.00–12.00 (Helsingforstid)",
                    "ulla-nord": "10.00–12.00 (Helsinki time)"}
            assert zone[inv.mentor] in plain
        for finnish in ("Aika", "Kutsu", "Helsingin aikaa", "klo"):
            assert finnish not in plain, (inv.mentor, plain)
        assert html_validate(html)["valid"]
    assert seen == {"milja-kopsi": {"Inbjudan"}, "ulla-nord": {"Invitation"}}
    # a cancellation says so once, in the mentor's words
    sent = {inv.key: sent_record(inv) for inv, _ in made}
    gone = snapshot_of(text.replace('status = "confirmed"', 'status = "cancelled"'), tmp_path / "a")
    prefixes = {inv.mentor: str(email.message_from_bytes(msg.as_bytes(), policy=default)["Subject"])
                for inv, msg in messages(gone, sent)}
    assert prefixes["milja-kopsi"].startswith("Inställd: ")
    assert prefixes["ulla-nord"].startswith("Cancelled: ")
    for subject in prefixes.values():
        assert subject.count("Inställd") + subject.count("Cancelled") + subject.count("PERUTTU") == 1
