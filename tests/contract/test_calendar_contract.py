"""The CalDAV calendar adapter's contract, the same tests on every calendar it is used with.

Like vdirsyncer's storage tests: one class of tests, parametrised (``backend``, in
conftest.py) over Radicale, Xandikos and Cyrus behind ``CalDAVCalendar``, and over the
in-memory ``MemoryCalendar`` that the sync's state machine (tests/unit/test_plan.py)
runs on; the double is only as good as its passing this suite. What the sync relies on:
listing gives href -> ETag; fetch gives (ETag, body); a create is refused on an href
that exists, an update or delete on a stale ETag; what is deleted is gone; nothing else
in the calendar is touched; nothing is written outside it or through a read-only one.
"""

from __future__ import annotations

import icalendar
import pytest

from klash_sync.deliver.caldav.calendar import PreconditionFailed
from klash_sync.errors import TargetProtocolError
from tests.fixtures.servers import foreign_event


def uid_and_summary(body: bytes) -> tuple[str, str]:
    """What a server may not change in an event (it may re-serialise the rest)."""
    [event] = icalendar.Calendar.from_ical(body).walk("VEVENT")
    return str(event["UID"]), str(event["SUMMARY"])


def event(name: str, summary: str = "Ohjelma") -> bytes:
    return foreign_event(f"{name}@contract.test", summary)


class TestCalendarContract:
    def test_a_new_calendar_is_a_collection_found_again_by_name_and_empty(self, backend):
        calendar = backend.fresh()
        url = calendar.open()
        assert url.endswith("/")
        assert calendar.listing() == {}
        again = backend.adapter(calendar.endpoint, False, None)  # found by its name
        assert again.open() == url
        assert again.listing() == {}
        for c in (calendar, again):
            c.close()

    def test_created_event_is_listed_and_fetched_at_its_etag(self, backend):
        calendar = backend.fresh()
        href = _href(calendar, "a.ics")
        etag = calendar.create(href, event("a"))
        listed = calendar.listing()
        assert list(listed) == [href]
        assert listed[href] is not None
        assert etag in (None, listed[href])  # a weak or missing ETag is not returned
        fetched = calendar.fetch([href, href.replace("a.ics", "missing.ics")])
        assert list(fetched) == [href]  # what is not there is left out
        assert fetched[href][0] == listed[href]
        assert uid_and_summary(fetched[href][1]) == ("a@contract.test", "Ohjelma")
        calendar.close()

    def test_create_on_an_existing_href_is_refused_and_changes_nothing(self, backend):
        calendar = backend.fresh()
        href = _href(calendar, "b.ics")
        calendar.create(href, event("b"))
        before = calendar.listing()
        with pytest.raises(PreconditionFailed):
            calendar.create(href, event("b", "Toinen"))
        assert calendar.listing() == before
        assert uid_and_summary(calendar.fetch([href])[href][1]) == ("b@contract.test", "Ohjelma")
        calendar.close()

    def test_update_at_the_current_etag_only(self, backend):
        calendar = backend.fresh()
        href = _href(calendar, "c.ics")
        calendar.create(href, event("c"))
        old = calendar.listing()[href]
        new = calendar.update(href, event("c", "Siirretty"), old)
        current = calendar.listing()[href]
        assert current != old
        assert new in (None, current)
        with pytest.raises(PreconditionFailed):  # If-Match with an ETag no longer current
            calendar.update(href, event("c", "Vanha tieto"), old)
        etag, body = calendar.fetch([href])[href]
        assert etag == current
        assert uid_and_summary(body)[1] == "Siirretty"
        calendar.close()

    def test_update_of_what_was_deleted_is_refused(self, backend):
        calendar = backend.fresh()
        href = _href(calendar, "d.ics")
        etag = calendar.create(href, event("d")) or calendar.listing()[href]
        calendar.delete(href, etag)
        with pytest.raises(PreconditionFailed):  # the sync then creates it again
            calendar.update(href, event("d", "Takaisin"), etag)
        assert calendar.listing() == {}
        calendar.close()

    def test_delete_at_the_current_etag_only_and_then_it_is_gone(self, backend):
        calendar = backend.fresh()
        href = _href(calendar, "e.ics")
        calendar.create(href, event("e"))
        old = calendar.listing()[href]
        backend.put_elsewhere(href, event("e", "Muokattu puhelimella"))  # the ETag moves on
        with pytest.raises(PreconditionFailed):
            calendar.delete(href, old)
        assert list(calendar.listing()) == [href]
        calendar.delete(href, calendar.listing()[href])
        assert calendar.listing() == {}
        assert calendar.fetch([href]) == {}
        calendar.delete(href, None)  # already gone: not an error
        calendar.close()

    def test_other_events_in_the_calendar_are_never_touched(self, backend):
        calendar = backend.fresh()
        mine = _href(calendar, "hammaslaakari.ics")
        backend.put_elsewhere(mine, foreign_event("dentist@mentor.example"))
        before = calendar.fetch([mine])[mine]
        href = _href(calendar, "f.ics")
        calendar.create(href, event("f"))
        calendar.update(href, event("f", "Uusi"), calendar.listing()[href])
        calendar.delete(href, calendar.listing()[href])
        assert calendar.listing() == {mine: before[0]}
        assert calendar.fetch([mine])[mine] == before
        calendar.close()

    def test_nothing_is_written_outside_the_calendar_or_through_a_read_only_one(self, backend):
        calendar = backend.fresh()
        collection = _href(calendar, "")
        for outside in ("/elsewhere/x.ics", collection, collection + "../x.ics", collection + "sub/x.ics"):
            with pytest.raises(TargetProtocolError):
                calendar.create(outside, event("x"))
        readonly = backend.fresh(readonly=True)
        sent = readonly.requests
        for write in (lambda: readonly.create(_href(readonly, "y.ics"), event("y")),
                      lambda: readonly.delete(_href(readonly, "y.ics"), None)):
            with pytest.raises(TargetProtocolError):
                write()
        assert readonly.requests == sent  # refused before anything was sent
        assert calendar.listing() == {}
        for c in (calendar, readonly):
            c.close()

    def test_requests_are_counted_and_a_listing_is_one(self, backend):
        calendar = backend.fresh()
        calendar.listing()
        before = calendar.requests
        calendar.listing()
        assert calendar.requests == before + 1
        calendar.create(_href(calendar, "g.ics"), event("g"))
        assert calendar.requests > before + 1
        calendar.close()


def _href(calendar, name: str) -> str:
    """A resource's href in the calendar: the collection's path and ``name``."""
    return "/" + calendar.open().split("://", 1)[1].split("/", 1)[1] + name
