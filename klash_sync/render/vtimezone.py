"""VTIMEZONE components from ``zoneinfo``, in the form Outlook writes and every client reads.

**The current rules as RRULEs, as Outlook and Exchange write them.** Outlook does not read
RDATE in a VTIMEZONE: on import it approximates the zone by one yearly
standard-to-daylight and one yearly daylight-to-standard transition and uses only TZID,
DTSTART, RRULE, TZOFFSETFROM and TZOFFSETTO ([MS-STANOICAL] 2.2.47,
https://learn.microsoft.com/en-us/openspecs/exchange_standards/ms-stanoical/b827ac3d-16b5-46e8-b885-a2c45b2f5716);
of several DAYLIGHT components it SHOULD parse only the one with the largest DTSTART
([MS-OXCICAL] 2.1.3.1.1.19.3,
https://learn.microsoft.com/en-us/openspecs/exchange_server_protocols/ms-oxcical/76589aac-9447-4d44-a236-31487f51cb0d),
and an RRULE must be YEARLY with one BYDAY occurrence such as ``2SU`` or ``-1SU``
(2.1.3.1.1.19.2.2, .../ms-oxcical/9b81b753-23fc-4635-a4f0-16445897d22b). Outlook and
Exchange themselves export one STANDARD and one DAYLIGHT, each with an RRULE and no RDATE
([MS-STANOICAL] 2.2.106, [MS-STANXICAL] 2.2.103). Other projects' users saw the RDATE form
misplaced by Outlook by an hour (iCalcreator/iCalcreator#86 and #106, nextcloud/calendar#4429)
and fixed by the RRULE form. So RDATE is not as good, and the rules in force at the end of
the span are written as ``RRULE:FREQ=YEARLY;BYMONTH=m;BYDAY=nSU`` without UNTIL: exactly
what Outlook keeps. Their DTSTART is a real onset (libical skips an onset that does not
match its RRULE, libical/libical#157), never 1601 as Outlook writes (mangstadt/biweekly#85).

**Past transitions as RDATEs, only where the span needs them.** Onsets before the current
rules (the US change of 2007, Moscow 2011/2014, Sao Paulo's last DST in 2019) are written as
observances with one RDATE property per onset and an earlier DTSTART, so that the RRULE
components keep the largest DTSTART of their kind and Outlook picks them. We write no
RRULE with UNTIL: icalendar's ``to_tz`` fails on it (collective/icalendar#708, from
dateutil/dateutil#1006). For such past rules Outlook can only approximate; the others
(libical, ical.js, icalendar, vobject) read every onset.

Rules found reading our feeds back with ical.js (Thunderbird, Nextcloud):

* RFC 5545 says DTSTART of an observance is the local time *before* the change (in
  TZOFFSETFROM). icalendar's ``Timezone.from_tzinfo`` writes the wall-clock time after it.
* ical.js ignores DTSTART when an observance also has RDATEs, so every onset, the first
  included, is repeated in RDATE (a recurrence set has no duplicates).
* Each onset is its own RDATE property, never a comma list: ical.js and vobject take only
  the first value of each RDATE property. libical reads either form.

The zone is described over a span of whole years around the programme, starting at the
last change before it, which keeps it small and the output deterministic (the same bytes
for the same programme and tzdata). The components are icalendar's.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from icalendar import Timezone, TimezoneDaylight, TimezoneStandard

_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


class Kind(NamedTuple):
    """What an observance is: its offsets, name and whether it is daylight time."""

    offset_from: timedelta
    offset_to: timedelta
    name: str
    dst: bool


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


def _weekdays(onset: datetime) -> set[str]:
    """The BYDAY values Outlook understands that name this day: ``nXX`` (n = 1..4) and ``-1XX``."""
    day = _DAYS[onset.weekday()]
    found = set()
    if onset.day <= 28:
        found.add(f"{(onset.day - 1) // 7 + 1}{day}")
    if onset.day + 7 > calendar.monthrange(onset.year, onset.month)[1]:
        found.add(f"-1{day}")
    return found


def _current_rule(onsets: list[datetime], last: date) -> tuple[int, str] | None:
    """(index where the rule starts, BYDAY) if the latest onsets follow one yearly rule up to
    the span's last year, on two years at least; None if they do not (past rules only)."""
    final = onsets[-1]
    if final.year != last.year - 1:
        return None
    shared, start = _weekdays(final), len(onsets) - 1
    while start > 0:
        before = onsets[start - 1]
        common = shared & _weekdays(before)
        same = (before.month, before.time()) == (final.month, final.time())
        if not (same and common and before.year == onsets[start].year - 1):
            break
        shared, start = common, start - 1
    if start == len(onsets) - 1:
        return None
    # "Last" when both fit (the EU rule): any span year fits either, later years need "last".
    last_ones = sorted(b for b in shared if b.startswith("-"))
    return start, (last_ones or sorted(shared))[0]


def _observances(tz: ZoneInfo, first: date, last: date) -> dict[Kind, list[datetime]]:
    """Each kind of observance with its onsets (local time before the change), from the last
    change in the year before the span (the one in force when it starts) to the span's end."""
    kinds: dict[Kind, list[datetime]] = defaultdict(list)
    before_span = transitions(tz, first - timedelta(days=366), first)[-1:]
    found = before_span + transitions(tz, first, last)
    if not before_span:  # no change for a year: the observance in force, from the span's start
        initial = datetime(first.year, first.month, first.day, tzinfo=UTC).astimezone(tz)
        offset = initial.utcoffset() or timedelta(0)
        kinds[Kind(offset, offset, initial.tzname() or "", bool(initial.dst()))].append(
            datetime(first.year, first.month, first.day))
    for instant, offset_from, offset_to in found:
        local = instant.astimezone(tz)
        kind = Kind(offset_from, offset_to, local.tzname() or "", bool(local.dst()))
        kinds[kind].append((instant + offset_from).replace(tzinfo=None))
    return kinds


def _part(kind: Kind, start: datetime) -> TimezoneStandard | TimezoneDaylight:
    part = TimezoneDaylight() if kind.dst else TimezoneStandard()
    part.add("DTSTART", start)
    part.add("TZOFFSETFROM", kind.offset_from)
    part.add("TZOFFSETTO", kind.offset_to)
    if kind.name:
        part.add("TZNAME", kind.name)
    return part


@lru_cache(maxsize=32)
def vtimezone_bytes(tzid: str, first: date, last: date) -> bytes:
    """A VTIMEZONE for ``tzid`` valid from ``first`` to ``last``."""
    parts: list[tuple[datetime, int, TimezoneStandard | TimezoneDaylight]] = []
    for kind, onsets in _observances(ZoneInfo(tzid), first, last).items():
        rule = _current_rule(onsets, last)
        past = onsets if rule is None else onsets[: rule[0]]
        if rule is not None:
            start = onsets[rule[0]]
            part = _part(kind, start)
            part.add("RRULE", {"FREQ": "YEARLY", "BYMONTH": start.month, "BYDAY": rule[1]})
            parts.append((start, 1, part))
        if past:
            part = _part(kind, past[0])
            for onset in past:  # one property per onset: see the module docstring
                part.add("RDATE", onset)
            parts.append((past[0], 0, part))
    vtz = Timezone()
    vtz.add("TZID", tzid)
    for _start, _order, part in sorted(parts, key=lambda p: (p[0], p[1])):
        vtz.add_component(part)
    body: bytes = vtz.to_ical()
    return body
