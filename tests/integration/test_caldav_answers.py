"""Answers in a mentor's CalDAV calendar, on Radicale, Xandikos and Cyrus (with scheduling).

Our pushed copy names the organiser and asks the calendar's mentor; the test, as the
mentor's calendar app would, GETs the copy, sets PARTSTAT=DECLINED and PUTs it back with
If-Match. The next pass records the answer (``klash-sync attendance --json`` shows it,
via "caldav") without writing the copy again; a later change keeps the answer on the copy,
a changed time asks again (README, "Answers in a CalDAV calendar"), and the stored answer
stays, shown for the SEQUENCE it was given to. On Cyrus, which schedules by itself, no
mail goes to anyone but the organiser (its outgoing iMIP is captured: tests/fixtures/
cyrus_server.py), while the same server does mail a stranger for an event that does not
say SCHEDULE-AGENT=CLIENT: the capture is shown to work.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import caldav
import icalendar
import pytest

from klash_sync.deliver.caldav.sync import Syncer
from klash_sync.programme.load import parse
from klash_sync.service.publish import publish
from klash_sync.settings import Settings
from klash_sync.state.store import Store
from tests.fixtures.common import fetch, run_cli
from tests.fixtures.cyrus_server import CyrusServer
from tests.fixtures.servers import PASSWORDS, start_radicale, start_xandikos

ORGANISER = "jarjestaja@kuntaliitto.test"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
VANTAA = 'title = "Vantaa"\nstart = 2027-10-08T09:00:00\nend = 2027-10-08T11:00:00\nmentors = ["milja-kopsi"]'
JOENSUU = 'title = "Joensuu"\ndate = 2027-10-01\nmentors = ["milja-kopsi"]'
_names = itertools.count(1)


@dataclass
class Target:
    """Where milja's calendar is, and how a client reaches it."""

    kind: str
    origin: str
    url: str
    user: str
    password: str
    email: str
    calendar: str
    cyrus: CyrusServer | None = None
    # Cyrus refuses (403) a scheduling object whose UID another calendar of the same user
    # holds as one (RFC 4791 no-uid-conflict); its server is shared by a module's tests.
    domain: str = "klash.test"

    def auth(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


@pytest.fixture(params=["radicale", "xandikos", "cyrus"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "cyrus":
        cyrus: CyrusServer = request.getfixturevalue("cyrus")
        n = next(_names)
        origin = f"http://127.0.0.1:{cyrus.http}"
        yield Target("cyrus", origin, f"{origin}/dav/calendars/user/milja/", "milja",
                     cyrus.passwords["milja"], "milja@example.test", f"Klash {n}", cyrus, f"klash{n}.test")
        return
    server = (start_radicale if request.param == "radicale" else start_xandikos)(tmp_path / "dav")
    yield Target(server.kind, server.base, server.calendar_url("alice"), "alice", PASSWORDS["alice"],
                 "alice@example.test", "Klash Milja")
    server.stop()


def programme(t: Target, *sessions: tuple[str, str], organiser_email: bool = True) -> str:
    text = (f'[programme]\nname = "Testi"\ntimezone = "Europe/Helsinki"\nuid_domain = "{t.domain}"\n'
            'organiser = "Kuntaliitto"\n')
    if organiser_email:
        text += f'organiser_email = "{ORGANISER}"\n'
    text += (f'\n[[mentors]]\nid = "milja-kopsi"\nname = "Milja Köpsi"\nemail = "{t.email}"\n'
             f'[mentors.caldav]\nurl = "{t.url}"\nusername = "{t.user}"\npassword_env = "PW_MILJA"\n'
             f'calendar = "{t.calendar}"\n')
    return text + "".join(f'\n[[sessions]]\nid = "{sid}"\n{body}\n' for sid, body in sessions)


class Rig:
    """A state directory, a programme file, and sync passes as the service runs them."""

    def __init__(self, t: Target, tmp_path: Path) -> None:
        self.t = t
        self.state = tmp_path / "state"
        self.state.mkdir(mode=0o700)
        self.path = tmp_path / "programme.toml"
        self.store = Store(self.state / "state.sqlite3")
        self.settings = Settings(state_dir=self.state, embedded_caldav=False, request_timeout=10,
                                 sync_workers=1, _env_file=None)  # type: ignore[call-arg]
        self.now = T0

    def sync(self, text: str):
        self.path.write_text(text, encoding="utf-8")
        self.now += timedelta(minutes=5)
        snapshot = publish(parse(text.encode(), "p.toml"), self.store, now=self.now, base_url=None)
        syncer = Syncer(self.settings, self.store, environ={"PW_MILJA": self.t.password},
                        clock=lambda: self.now)
        try:
            report = syncer.run(snapshot, republish=lambda old: publish(
                old.programme, self.store, now=self.now, base_url=None, previous=old))
        finally:
            syncer.close()
        assert report.ok, [r.error for r in report.results]
        return report.results[0]

    def href(self, sid: str) -> str:
        (key,) = self.store.calendars()
        return {i.uid: i.href for i in self.store.items(key).values()}[f"{sid}@{self.t.domain}"]

    def copy(self, sid: str) -> tuple[icalendar.Event, str, bytes]:
        got = fetch(self.t.origin, self.href(sid), headers=self.t.auth())
        assert got.status == 200, got.status
        cal = icalendar.Calendar.from_ical(got.body)
        (event,) = cal.walk("VEVENT")
        return event, got.headers["etag"], got.body

    def answer(self, sid: str, partstat: str, at: datetime,
               stamps: tuple[str, ...] = ("DTSTAMP", "LAST-MODIFIED")) -> None:
        """What a calendar app does when the mentor presses Decline: GET, change, PUT If-Match
        (some apps move only DTSTAMP)."""
        got = fetch(self.t.origin, self.href(sid), headers=self.t.auth())
        cal = icalendar.Calendar.from_ical(got.body)
        for event in cal.walk("VEVENT"):
            event["ATTENDEE"].params["PARTSTAT"] = partstat
            for name in stamps:
                del event[name]
                event.add(name, at)
        put = fetch(self.t.origin, self.href(sid), "PUT",
                    {**self.t.auth(), "If-Match": got.headers["etag"],
                     "Content-Type": "text/calendar; charset=utf-8"}, cal.to_ical())
        assert put.status in (200, 201, 204), (put.status, put.body[:300])

    def attendance(self) -> dict[str, dict]:
        result = run_cli("attendance", "--json", env={"KLASH_PROGRAMME": str(self.path),
                                                      "KLASH_STATE_DIR": str(self.state)})
        assert result.code == 0, result.err
        return {s["id"]: s["mentors"][0] for s in json.loads(result.out)["sessions"]}


def partstat(event: icalendar.Event) -> str:
    return str(event["ATTENDEE"].params["PARTSTAT"])


def test_a_declined_copy_is_read_back_kept_and_asked_again_only_for_a_new_time(target, tmp_path):
    rig = Rig(target, tmp_path)
    sent_before = len(target.cyrus.outgoing) if target.cyrus else 0
    first = rig.sync(programme(target, ("vantaa", VANTAA), ("joensuu", JOENSUU)))
    assert first.created == 2
    event, _, _ = rig.copy("vantaa")
    assert str(event["ORGANIZER"]).lower() == f"mailto:{ORGANISER}"
    assert str(event["ORGANIZER"].params["SCHEDULE-AGENT"]) == "CLIENT"
    assert str(event["ATTENDEE"]).lower() == f"mailto:{target.email}"
    params = event["ATTENDEE"].params
    assert (params["PARTSTAT"], params["RSVP"], params["SCHEDULE-AGENT"]) == \
        ("NEEDS-ACTION", "TRUE", "CLIENT")
    seq = int(event["SEQUENCE"])

    declined_at = datetime(2026, 11, 1, 14, 30, tzinfo=UTC)
    rig.answer("vantaa", "DECLINED", declined_at)
    _, etag, _ = rig.copy("vantaa")
    again = rig.sync(programme(target, ("vantaa", VANTAA), ("joensuu", JOENSUU)))
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)  # read, not written back
    event, etag_after, _ = rig.copy("vantaa")
    assert (partstat(event), etag_after) == ("DECLINED", etag)
    assert rig.sync(programme(target, ("vantaa", VANTAA), ("joensuu", JOENSUU))).changed == 0
    rig.store.close()
    shown = rig.attendance()
    assert shown["vantaa"] == {"id": "milja-kopsi", "name": "Milja Köpsi", "answer": "declined",
                               "via": "caldav", "at": declined_at.isoformat(), "comment": "",
                               "for_sequence": seq}
    assert shown["joensuu"]["answer"] == "none"
    rig.store = Store(rig.state / "state.sqlite3")
    (answer,) = rig.store.all_answers()
    assert answer.source == f"caldav:{next(iter(rig.store.calendars()))}:{rig.href('vantaa')}:{etag}"

    # Another change (the title): our update carries the answer over, the store keeps it.
    retitled = VANTAA.replace('"Vantaa"', '"Vantaa, kahvit"')
    changed = rig.sync(programme(target, ("vantaa", retitled), ("joensuu", JOENSUU)))
    assert changed.updated == 1
    event, _, _ = rig.copy("vantaa")
    assert (str(event["SUMMARY"]), partstat(event)) == ("Vantaa, kahvit", "DECLINED")
    assert int(event["SEQUENCE"]) == seq + 1
    assert rig.sync(programme(target, ("vantaa", retitled), ("joensuu", JOENSUU))).changed == 0
    assert len(rig.store.all_answers()) == 1  # our own write is not an answer

    # A new time asks again; the decline stays, as an answer to the earlier version.
    moved = retitled.replace("T09:00:00", "T13:00:00").replace("T11:00:00", "T15:00:00")
    assert rig.sync(programme(target, ("vantaa", moved), ("joensuu", JOENSUU))).updated == 1
    event, _, _ = rig.copy("vantaa")
    assert (partstat(event), int(event["SEQUENCE"])) == ("NEEDS-ACTION", seq + 2)
    rig.store.close()
    shown = rig.attendance()["vantaa"]
    assert (shown["answer"], shown["via"], shown["for_sequence"]) == ("declined", "caldav", seq)

    # The mentor accepts the new time: read back as such.
    rig.store = Store(rig.state / "state.sqlite3")
    accepted_at = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    rig.answer("vantaa", "ACCEPTED", accepted_at, stamps=("DTSTAMP",))
    assert rig.sync(programme(target, ("vantaa", moved), ("joensuu", JOENSUU))).changed == 0
    rig.store.close()
    shown = rig.attendance()["vantaa"]
    assert (shown["answer"], shown["for_sequence"], shown["at"]) == \
        ("accepted", seq + 2, accepted_at.isoformat())

    if target.cyrus is not None:
        time.sleep(1)  # Cyrus sends iMIP from the request that stored the copy; give it a moment
        sent = target.cyrus.outgoing[sent_before:]
        assert all(rcpt == [ORGANISER] for _, rcpt, _ in sent), sent
        assert sent == []  # SCHEDULE-AGENT=CLIENT: not even the organiser gets mail from it
        # The capture works: an event the mentor organises, without SCHEDULE-AGENT=CLIENT,
        # makes the same server mail its attendee at once.
        control = (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
                   f"UID:control-{target.calendar.replace(' ', '')}@mentor.test\r\n"
                   "DTSTAMP:20261101T120000Z\r\nDTSTART:20271001T100000Z\r\n"
                   "DTEND:20271001T110000Z\r\nSUMMARY:Kahvit\r\n"
                   f"ORGANIZER:mailto:{target.email}\r\n"
                   "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:someone@elsewhere.test\r\n"
                   "END:VEVENT\r\nEND:VCALENDAR\r\n").encode()
        put = fetch(target.origin, "/dav/calendars/user/milja/Default/control.ics", "PUT",
                    {**target.auth(), "Content-Type": "text/calendar"}, control)
        assert put.status in (201, 204), put.status
        deadline = time.monotonic() + 10
        while not target.cyrus.outgoing[sent_before:] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [r for _, r, _ in target.cyrus.outgoing[sent_before:]] == [["someone@elsewhere.test"]]


def test_copies_pushed_before_they_named_anybody_are_rewritten_once(target, tmp_path):
    """Copies as the code before answers wrote them (no ORGANIZER, no ATTENDEE; a programme
    without organiser_email still renders exactly those) are upgraded once, in place."""
    rig = Rig(target, tmp_path)
    old = programme(target, ("vantaa", VANTAA), ("joensuu", JOENSUU), organiser_email=False)
    assert rig.sync(old).created == 2
    event, _, _ = rig.copy("vantaa")
    assert ("ORGANIZER" in event, "ATTENDEE" in event) == (False, False)
    hrefs = {sid: rig.href(sid) for sid in ("vantaa", "joensuu")}
    new = programme(target, ("vantaa", VANTAA), ("joensuu", JOENSUU))
    upgraded = rig.sync(new)
    assert (upgraded.created, upgraded.updated, upgraded.deleted) == (0, 2, 0)
    assert {sid: rig.href(sid) for sid in hrefs} == hrefs
    event, _, _ = rig.copy("vantaa")
    assert partstat(event) == "NEEDS-ACTION"
    assert rig.sync(new).changed == 0
    collection = target.origin + hrefs["vantaa"].rsplit("/", 1)[0] + "/"
    client = caldav.DAVClient(url=collection, username=target.user, password=target.password)
    uids = [str(icalendar.Calendar.from_ical(o.data).walk("VEVENT")[0]["UID"])
            for o in client.calendar(url=collection).events()]
    assert sorted(uids) == [f"joensuu@{target.domain}", f"vantaa@{target.domain}"]  # no duplicates
    rig.store.close()


def test_a_lost_store_reads_the_answer_back_from_the_calendar(target, tmp_path):
    """Issue 20, "nothing lost": answers survive a lost store as far as the servers hold them.
    The state directory is removed after the decline was read; a pass on a fresh store finds
    our copy on the server (the same one: no second copy), reads the mentor's answer from it
    again, and keeps the answer on the copy whatever it rewrites."""
    rig = Rig(target, tmp_path)
    text = programme(target, ("vantaa", VANTAA))
    assert rig.sync(text).created == 1
    declined_at = datetime(2026, 11, 1, 14, 30, tzinfo=UTC)
    rig.answer("vantaa", "DECLINED", declined_at)
    rig.sync(text)
    href = rig.href("vantaa")
    rig.store.close()
    assert rig.attendance()["vantaa"]["answer"] == "declined"
    for path in rig.state.iterdir():  # the store is lost
        path.unlink()
    rig.store = Store(rig.state / "state.sqlite3")
    rig.sync(text)
    event, _, _ = rig.copy("vantaa")
    assert rig.href("vantaa") == href  # the same copy, not a second one
    assert partstat(event) == "DECLINED"  # what the mentor said is still on their copy
    rig.store.close()
    shown = rig.attendance()["vantaa"]
    assert (shown["answer"], shown["via"], shown["at"]) == ("declined", "caldav", declined_at.isoformat())
