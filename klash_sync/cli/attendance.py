"""``klash-sync attendance``: who is coming, per session, as the organisers need it.

Read-only, like ``plan``: it works on a private copy of the state (``Store.readonly``),
so it runs beside the daemon and writes nothing. ``--json`` gives the same as a
document for other tools (its shape is in the README and ``render.attendance.as_json``).
"""

from __future__ import annotations

import argparse
import json

from klash_sync.cli import output
from klash_sync.cli.operate import now, settings_of
from klash_sync.errors import UserError
from klash_sync.programme.load import load
from klash_sync.render.attendance import NONE, SessionAttendance, as_json, attendance
from klash_sync.service.actions import EXIT_OK
from klash_sync.service.publish import publish
from klash_sync.state.store import Store

_WORDS = {"accepted": "coming", "tentative": "maybe", "declined": "not coming", NONE: "no answer"}
_VIA = {"email": "by e-mail", "caldav": "in their calendar", "web": "on the page"}


def _lines(row: SessionAttendance) -> list[str]:
    counts = row.counts()
    when = f"{row.start:%Y-%m-%d}" + ("" if row.all_day else f" {row.start:%H:%M}")
    head = f"{when}  {row.title} ({row.id})"
    if row.status == "cancelled":
        head += "  CANCELLED"
    lines = [head, "  " + ", ".join(f"{counts[k]} {w}" for k, w in _WORDS.items())]
    width = max((len(m.name) for m in row.mentors), default=0)
    for m in row.mentors:
        line = f"    {m.name:<{width}}  {_WORDS[m.answer]}"
        if m.at is not None and m.via is not None:
            line += f"  {_VIA[m.via]}, {m.at:%Y-%m-%d %H:%M} UTC"
        if m.earlier:
            line += f"  (to an earlier version, SEQUENCE {m.for_sequence})"
        if m.comment:
            line += f"  “{m.comment}”"
        lines.append(line)
    return lines


def cmd_attendance(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    programme = load(settings.programme)
    if args.session and all(s.id != args.session for s in programme.sessions):
        raise UserError(f"{settings.programme}: no session '{args.session}' in the programme")
    store = Store.readonly(settings.state_db)  # a private copy: writes nothing
    try:
        snapshot = publish(programme, store, now=now(), base_url=settings.event_base_url)
        latest = store.latest_answers()
    finally:
        store.close()
    rows = attendance(programme, snapshot.revisions, latest, only=args.session)
    if args.json:
        output.say(json.dumps(as_json(rows), ensure_ascii=False, indent=2))
        return EXIT_OK
    for n, row in enumerate(rows):
        if n:
            output.say()
        for line in _lines(row):
            output.say(line)
    return EXIT_OK
