"""Who a pushed copy names and asks (render.participation), and how the planner keeps the answer.

Pure: the copies are rendered from a programme, read back with ``normalise.inspect`` as a
server's copy would be, and planned against. The same programme gives the same bytes; feeds
and the embedded server's copies ask nobody; a PARTSTAT changed on the copy is no content
change; an update carries the answer over unless the time moved.
"""

from __future__ import annotations

from datetime import UTC, datetime

import icalendar

from klash_sync.deliver.caldav.jobs import desired_for
from klash_sync.deliver.caldav.plan import Adopt, Remote, Update, plan
from klash_sync.programme.load import parse
from klash_sync.render.normalise import inspect
from klash_sync.service.publish import publish
from klash_sync.state.store import Item, Store
from tests.fixtures.common import programme_text

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
# A long name folds the ATTENDEE line: the answer must still replace the question.
HEADER = """
[programme]
name = "Testi"
timezone = "Europe/Helsinki"
uid_domain = "klash.test"
organiser = "Kuntaliitto"
organiser_email = "jarjestaja@kuntaliitto.test"

[[mentors]]
id = "milja-kopsi"
name = "Milja Köpsi-Väänänen-Åkerblom, kaupunginvaltuuston puheenjohtaja"
email = "milja@example.test"
"""
VANTAA = ('id = "vantaa"\ntitle = "Vantaa"\nstart = 2027-10-08T09:00:00\nend = 2027-10-08T11:00:00\n'
          'mentors = ["milja-kopsi"]')
UID = "vantaa@klash.test"


def desired(tmp_path, text: str, *, asking: bool = True, name: str = "s"):
    store = Store(tmp_path / f"{name}.sqlite3")
    snapshot = publish(parse(text.encode(), "p.toml"), store, now=T0, base_url=None)
    store.close()
    return snapshot, desired_for(snapshot, "milja-kopsi", asking=asking)[UID]


def answered(body: bytes, partstat: str) -> bytes:
    """The copy after the mentor's app changed their PARTSTAT."""
    cal = icalendar.Calendar.from_ical(body)
    for event in cal.walk("VEVENT"):
        event["ATTENDEE"].params["PARTSTAT"] = partstat
    return cal.to_ical()


def as_read(body: bytes, href: str = "/cal/vantaa.ics", etag: str = '"e2"') -> Remote:
    seen = inspect(body, "klash.test")
    return Remote(href, etag, seen.ours, seen.uid, seen.hash, seen.sequence, seen.core,
                  seen.partstats, seen.at, seen.when)


def test_the_copy_names_the_organiser_and_asks_only_its_mentor_the_same_bytes_each_time(tmp_path):
    text = programme_text(VANTAA, header=HEADER)
    snapshot, want = desired(tmp_path, text, name="a")
    _, again = desired(tmp_path, text, name="b")
    assert want.body == again.body
    (event,) = icalendar.Calendar.from_ical(want.body).walk("VEVENT")
    assert str(event["ORGANIZER"]) == "mailto:jarjestaja@kuntaliitto.test"
    assert dict(event["ORGANIZER"].params) == {"CN": "Kuntaliitto", "SCHEDULE-AGENT": "CLIENT"}
    assert str(event["ATTENDEE"]) == "mailto:milja@example.test"
    assert {k: str(v) for k, v in event["ATTENDEE"].params.items() if k != "CN"} == {
        "CUTYPE": "INDIVIDUAL", "PARTSTAT": "NEEDS-ACTION", "ROLE": "REQ-PARTICIPANT",
        "RSVP": "TRUE", "SCHEDULE-AGENT": "CLIENT"}
    seen = inspect(want.body, "klash.test")
    assert (seen.hash, seen.core) == (want.hash, want.core)
    for feed in snapshot.feeds.values():  # feeds stay as they were
        assert b"ATTENDEE" not in feed.body
        assert b"ORGANIZER" not in feed.body
    _, plain = desired(tmp_path, text, asking=False, name="c")  # the embedded server's copy
    assert b"ATTENDEE" not in plain.body
    _, nobody = desired(tmp_path, text.replace('organiser_email = "jarjestaja@kuntaliitto.test"\n', ""),
                        name="d")
    assert b"ATTENDEE" not in nobody.body
    assert b"ORGANIZER" not in nobody.body


def test_an_answer_is_no_change_and_an_update_carries_it_unless_the_time_moved(tmp_path):
    _, want = desired(tmp_path, programme_text(VANTAA, header=HEADER), name="a")
    declined = answered(want.body, "DECLINED")
    copy = as_read(declined)
    assert copy.partstats == (("milja@example.test", "DECLINED"),)
    state = {UID: Item(UID, copy.href, '"e1"', want.hash)}
    # The mentor answered: same content, nothing to write, only the new ETag to record.
    assert plan({UID: want}, {copy.href: copy}, state, collection="/cal/").actions == [
        Adopt(UID, copy.href, '"e2"', want.hash)]

    retitled = VANTAA.replace('"Vantaa"', '"Vantaa, kahvit"')
    _, changed = desired(tmp_path, programme_text(retitled, header=HEADER), name="b")
    (update,) = plan({UID: changed}, {copy.href: copy}, state, collection="/cal/").actions
    assert isinstance(update, Update)
    assert inspect(update.body, "klash.test").partstats == (("milja@example.test", "DECLINED"),)
    assert update.body == changed.invitee.answered(changed.body, "DECLINED")

    moved = VANTAA.replace("T09:00:00", "T13:00:00").replace("T11:00:00", "T15:00:00")
    _, rescheduled = desired(tmp_path, programme_text(moved, header=HEADER), name="c")
    (update,) = plan({UID: rescheduled}, {copy.href: copy}, state, collection="/cal/").actions
    assert isinstance(update, Update)
    assert update.body == rescheduled.body  # asked again
    assert inspect(update.body, "klash.test").partstats == (("milja@example.test", "NEEDS-ACTION"),)
