"""Run by Debian's /usr/bin/python3 (python3-gi + gir1.2-ical-3.0), not by the test Python.

Reads one iCalendar file with libical (ICalGLib) and prints {uid: start in UTC} as JSON,
each DTSTART resolved through the file's own VTIMEZONE (libical looks a TZID up in the
VCALENDAR first), so tests can compare libical's reading of our VTIMEZONEs with zoneinfo.
Like tests/libical_check.py it runs as a subprocess: PyGObject exists only there.
"""

from __future__ import annotations

import json
import sys

import gi

gi.require_version("ICalGLib", "3.0")
from gi.repository import ICalGLib  # noqa: E402


def instants(text: str) -> dict[str, str]:
    root = ICalGLib.Component.new_from_string(text)
    utc = ICalGLib.Timezone.get_utc_timezone()
    found = {}
    event = root.get_first_component(ICalGLib.ComponentKind.VEVENT_COMPONENT)
    while event is not None:
        start = event.get_dtstart()
        if not start.is_date():
            start.convert_to_zone_inplace(utc)
            found[event.get_uid()] = (f"{start.get_year():04d}-{start.get_month():02d}-"
                                      f"{start.get_day():02d}T{start.get_hour():02d}:"
                                      f"{start.get_minute():02d}:{start.get_second():02d}Z")
        event = root.get_next_component(ICalGLib.ComponentKind.VEVENT_COMPONENT)
    return found


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        print(json.dumps(instants(f.read())))


if __name__ == "__main__":
    main()
