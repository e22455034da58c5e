"""Run by Debian's /usr/bin/python3 (python3-gi + gir1.2-ical-3.0), not by the test Python.

Reads each iCalendar file named on the command line with libical (ICalGLib), runs its
RFC 5545/5546 restriction check (what Evolution applies) and prints one JSON object:
{file: [problems]}, where a problem is a parse error or a failed restriction. An empty
list means libical accepts the file. The test suite runs it as a subprocess because
PyGObject exists only for the system Python.
"""

from __future__ import annotations

import json
import sys

import gi

gi.require_version("ICalGLib", "3.0")
from gi.repository import ICalGLib  # noqa: E402


def problems(comp: ICalGLib.Component) -> list[str]:
    found = []
    prop = comp.get_first_property(ICalGLib.PropertyKind.XLICERROR_PROPERTY)
    while prop is not None:
        found.append(f"{comp.isa().value_nick}: {prop.get_xlicerror()}")
        prop = comp.get_next_property(ICalGLib.PropertyKind.XLICERROR_PROPERTY)
    sub = comp.get_first_component(ICalGLib.ComponentKind.ANY_COMPONENT)
    while sub is not None:
        found += problems(sub)
        sub = comp.get_next_component(ICalGLib.ComponentKind.ANY_COMPONENT)
    return found


def check(text: str) -> list[str]:
    comp = ICalGLib.Component.new_from_string(text)
    if comp is None:
        return ["libical could not parse the file"]
    if comp.isa() != ICalGLib.ComponentKind.VCALENDAR_COMPONENT:
        return [f"top component is {comp.isa().value_nick}, not VCALENDAR"]
    passed = comp.check_restrictions()  # adds X-LIC-ERROR properties where it fails
    found = problems(comp)
    if not passed and not found:
        found.append("check_restrictions() failed")
    return found


def main() -> None:
    result = {}
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            result[path] = check(f.read())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
