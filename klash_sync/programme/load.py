"""Loading and checking ``programme.toml``: every mistake becomes a located, readable Problem.

The file is edited by organisers, often in a hurry and not always in a code editor.
So a load either returns a fully valid ``Programme`` or raises ``ProgrammeError``
listing *every* problem, each naming the file, the line where we can find it, the
session or mentor id, and the field, in words that say how to fix it. Reading TOML
and pydantic errors into such Problems is ``problems``' job; the checks across the
whole programme (unique ids, known mentors, local times that exist) are made here.
"""

from __future__ import annotations

import difflib
import tomllib
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import ValidationError

from klash_sync.errors import Problem, ProgrammeError
from klash_sync.programme import routing
from klash_sync.programme.model import Mentor, Programme, Session
from klash_sync.programme.problems import TABLES, Locator, ordered, pydantic_problem, toml_problem


def load(path: Path) -> Programme:
    """Read, parse and check the programme file; raise ProgrammeError listing every problem."""
    name = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProgrammeError([Problem(name, None, None, "the file", None, "not found")]) from None
    except OSError as e:
        raise ProgrammeError(
            [Problem(name, None, None, "the file", None, f"cannot be read ({e.strerror})")]
        ) from None
    return parse(raw, name)


def parse(raw: bytes, name: str) -> Programme:
    """Parse programme bytes; ``name`` is how the file is called in messages."""
    text = _decode(raw, name)
    if not text.strip():
        raise ProgrammeError(
            [Problem(name, None, None, "the file", None,
                     "is empty; it needs at least a [programme] table (see the README)")]
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProgrammeError([toml_problem(e, name)]) from None
    locator = Locator(text)
    try:
        programme = Programme.model_validate(data)
    except ValidationError as e:
        problems = [pydantic_problem(err, data, locator, name) for err in e.errors()]
        raise ProgrammeError(ordered(problems)) from None
    problems = check(programme, locator, name)
    if problems:
        raise ProgrammeError(ordered(problems))
    return programme


def _decode(raw: bytes, name: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ProgrammeError(
            [Problem(name, line, column, "the file", None,
                     "is not valid UTF-8 text; save it as UTF-8 (it may have been saved "
                     "as Latin-1 or Windows-1252 by another editor)")]
        ) from None
    return text.removeprefix("\ufeff")


def check(programme: Programme, locator: Locator | None, name: str) -> list[Problem]:
    """Whole-programme checks that a single model cannot make."""
    problems: list[Problem] = []

    def add(table: str | None, index: int | None, place: str, field: str | None, msg: str) -> None:
        line = None
        if locator is not None and table is not None:
            line = locator.line_of(table, index, field)
        problems.append(Problem(name, line, None, place, field, msg))

    tz = _timezone(programme.programme.timezone)
    if tz is None:
        zone = programme.programme.timezone
        close = difflib.get_close_matches(zone, sorted(available_timezones()), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else " (use an IANA name like Europe/Helsinki)"
        add("programme", None, "[programme]", "timezone", f"'{zone}' is not a known time zone{hint}")

    groups: list[tuple[str, Sequence[Mentor | Session]]] = [
        ("mentors", programme.mentors), ("sessions", programme.sessions)]
    for table, items in groups:
        kind = TABLES[table][0]
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            if item.id in seen:
                add(table, index, f"{kind} '{item.id}'", "id",
                    f"the id is used twice (also by {kind} #{seen[item.id] + 1}); ids must be unique")
            seen.setdefault(item.id, index)

    mentor_ids = [m.id for m in programme.mentors]
    for index, session in enumerate(programme.sessions):
        place = f"session '{session.id}'"
        for mentor_id, count in Counter(session.mentors).items():
            if mentor_id not in mentor_ids:
                close = difflib.get_close_matches(mentor_id, mentor_ids, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else (
                    " (add them as a [[mentors]] entry first)")
                add("sessions", index, place, "mentors", f"'{mentor_id}' is not a known mentor{hint}")
            if count > 1:
                add("sessions", index, place, "mentors", f"'{mentor_id}' is listed {count} times")
        if tz is not None and session.start is not None and session.end is not None:
            for field in ("start", "end"):
                problem = _local_time_problem(getattr(session, field), tz)
                if problem:
                    add("sessions", index, place, field, problem)

    for found in routing.problems(programme):  # who cannot be reached by their channel
        add(*found)

    targets: dict[tuple[str, str, str], str] = {}
    for index, mentor in enumerate(programme.mentors):
        if mentor.caldav is None:
            continue
        key = (mentor.caldav.url.rstrip("/"), mentor.caldav.username, mentor.caldav.calendar)
        if key in targets:
            add("mentors", index, f"mentor '{mentor.id}'", "caldav",
                f"points at the same calendar as mentor '{targets[key]}'; each mentor needs "
                "their own calendar, or one sync would remove the other's events")
        targets.setdefault(key, mentor.id)
    return problems


def _timezone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _with_offset(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{moment:%Y-%m-%dT%H:%M:%S}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _local_time_problem(value: datetime, tz: ZoneInfo) -> str | None:
    """A local time that does not exist (spring forward) or exists twice (fall back)."""
    if value.tzinfo is not None:
        return None
    aware = value.replace(tzinfo=tz)
    round_trip = aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if round_trip != value:
        return (f"{value:%Y-%m-%d %H:%M} does not exist in {tz.key} (the clocks move forward "
                "then); pick another time")
    other = value.replace(tzinfo=tz, fold=1)
    if other.utcoffset() != aware.utcoffset():
        return (f"{value:%Y-%m-%d %H:%M} happens twice in {tz.key} (the clocks move back "
                f"then); add the offset you mean: {_with_offset(aware)} or {_with_offset(other)}")
    return None
