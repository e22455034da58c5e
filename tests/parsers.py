"""Independent readers of our iCalendar output: vobject (Python) and ical.js (Node).

Each returns plain dicts {uid: {...}} so tests compare what a mentor's client would
show with what the programme says, without going through the library that wrote it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import vobject

JS_DIR = Path(__file__).parent / "js"


def _instant(value: date | datetime) -> str:
    if isinstance(value, datetime):
        assert value.tzinfo is not None, "a timed event must not be floating"
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


def read_vobject(body: bytes) -> dict[str, dict]:
    cal = vobject.readOne(body.decode("utf-8"))
    events = {}
    for vevent in cal.vevent_list:
        events[vevent.uid.value] = {
            "summary": vevent.summary.value,
            "start": _instant(vevent.dtstart.value),
            "end": _instant(vevent.dtend.value),
            "status": vevent.status.value,
            "sequence": int(vevent.sequence.value),
            "location": vevent.location.value if hasattr(vevent, "location") else "",
            "description": vevent.description.value,
        }
    return events


def node() -> str:
    path = shutil.which("node")
    assert path, "node is required for the ical.js client tests (see .ci/run)"
    assert (JS_DIR / "node_modules" / "ical.js").is_dir(), (
        "run `npm ci --prefix tests/js` first (the README's test command does)"
    )
    return path


def read_icaljs(body: bytes) -> dict[str, dict]:
    proc = subprocess.run(
        [node(), str(JS_DIR / "read_ics.mjs")], input=body, capture_output=True,
        timeout=60, check=True,
    )
    data = json.loads(proc.stdout)
    events = {}
    for e in data["events"]:
        start, end = e["start"], e["end"]
        if not e["allDay"]:
            start = start.replace(".000Z", "Z")
            end = end.replace(".000Z", "Z")
        events[e["uid"]] = {
            "summary": e["summary"],
            "start": start,
            "end": end,
            "status": e["status"],
            "sequence": e["sequence"],
            "location": e["location"] or "",
            "description": e["description"],
        }
    return events
