"""VTIMEZONE components from ``zoneinfo``, written so that every client reads them alike.

We build these instead of using ``icalendar.Timezone.from_tzinfo`` for two reasons
found by reading our feeds back with ical.js (Thunderbird, Nextcloud):

* RFC 5545 says DTSTART of an observance is the local time *before* the change
  (in TZOFFSETFROM). icalendar writes the wall-clock time after it, an hour late
  for spring-forward transitions.
* ical.js ignores DTSTART when an observance also has RDATEs, so a zone whose
  first onset is only in DTSTART loses it, and a summer event shows an hour off.
  We therefore repeat every onset, the first included, in RDATE (RFC 5545 allows
  an RDATE equal to DTSTART: the recurrence set has no duplicates).
* Each onset is its own RDATE property, never a comma list. RFC 5545 (3.8.5.2)
  allows a list, but ical.js takes only the first value of each RDATE property
  (``rdate.getFirstValue()`` in ``Timezone._expandComponent``), and vobject hands
  dateutil a VTIMEZONE it re-serialises with only the first value of each RDATE.
  With a list, every onset after the span's first year was lost: a summer event
  in a later year was read in the previous winter's offset, an hour late.
  libical reads either form.

We write no RRULE: one RDATE per onset is exact for any zone, rule changes included
(Europe/Moscow 2011/2014, America/Sao_Paulo 2019), and clients agree on it.

The zone is described only over a span of whole years around the programme, which
keeps it small and the output deterministic. The components are icalendar's.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from icalendar import Timezone, TimezoneDaylight, TimezoneStandard


def transitions(tz: ZoneInfo, first: date, last: date) -> list[tuple[datetime, timedelta, timedelta]]:
    """Every UTC offset change in [first, last): (instant in UTC, offset before, offset after)."""
    found = []
    day = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC)
    step = timedelta(days=1)
    while day < end:
        before, after = day.astimezone(tz).utcoffset(), (day + step).astimezone(tz).utcoffset()
        if before != after:
            low, high = day, day + step  # offset(low) == before, offset(high) == after
            while high - low > timedelta(minutes=1):
                mid = low + (high - low) / 2
                mid = mid.replace(second=0, microsecond=0)
                if mid <= low:
                    break
                if mid.astimezone(tz).utcoffset() == before:
                    low = mid
                else:
                    high = mid
            assert before is not None
            assert after is not None
            found.append((high, before, after))
        day += step
    return found


@lru_cache(maxsize=32)
def vtimezone_bytes(tzid: str, first: date, last: date) -> bytes:
    """A VTIMEZONE for ``tzid`` valid from ``first`` to ``last``."""
    tz = ZoneInfo(tzid)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    initial = start.astimezone(tz)
    groups: dict[tuple[timedelta, timedelta, str, bool], list[datetime]] = defaultdict(list)
    # The observance in force at the start of the span, as its own first onset.
    offset0 = initial.utcoffset() or timedelta(0)
    key0 = (offset0, offset0, initial.tzname() or "", bool(initial.dst()))
    groups[key0].append(datetime(first.year, first.month, first.day))
    for instant, before, after in transitions(tz, first, last):
        local = instant.astimezone(tz)
        key = (before, after, local.tzname() or "", bool(local.dst()))
        groups[key].append((instant + before).replace(tzinfo=None))
    vtz = Timezone()
    vtz.add("TZID", tzid)
    ordered = sorted(groups.items(), key=lambda item: item[1][0])
    for (offset_from, offset_to, name, dst), onsets in ordered:
        part = TimezoneDaylight() if dst else TimezoneStandard()
        part.add("DTSTART", onsets[0])
        part.add("TZOFFSETFROM", offset_from)
        part.add("TZOFFSETTO", offset_to)
        if name:
            part.add("TZNAME", name)
        for onset in onsets:  # one property per onset: see the module docstring
            part.add("RDATE", onset)
        vtz.add_component(part)
    body: bytes = vtz.to_ical()
    return body
