"""Loading and checking ``programme.toml``: every mistake becomes a located, readable Problem.

The file is edited by organisers, often in a hurry and not always in a code editor.
So a load either returns a fully valid ``Programme`` or raises ``ProgrammeError``
listing *every* problem, each naming the file, the line where we can find it, the
session or mentor id, and the field, in words that say how to fix it. Reading TOML
and pydantic errors into such Problems is ``problems``' job; the checks across the
whole programme (unique ids, known mentors, local times that exist) are made here.
"""

from __future__ import annotations

import contextlib
import difflib
import tomllib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeGuard
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import ValidationError

from klash_sync.errors import Problem, ProgrammeError
from klash_sync.programme import routing
from klash_sync.programme.fields import SLUG_RE
from klash_sync.programme.model import Mentor, Programme
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
        # The whole-programme checks run on what was written as well, so a bad date does
        # not hide an unknown mentor or a duplicate id: every problem in one round.
        problems = [pydantic_problem(err, data, locator, name) for err in e.errors()]
        problems += _checks(Written.of_data(data), locator, name)
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


@dataclass(frozen=True)
class Written:
    """What the whole-programme checks read, from a valid programme or from the raw TOML.

    From the raw TOML (a file that does not validate), ids and mentor lists are taken
    where they are valid on their own, and mentors where the whole entry is: whatever
    else is wrong with an entry was reported by pydantic already.
    """

    timezone: str | None
    mentor_ids: list[tuple[int, str]]  # index in the file, id
    sessions: list[tuple[int, str, tuple[str, ...]]]  # index, place, mentor ids
    session_ids: list[tuple[int, str]]
    times: list[tuple[int, str, str, datetime]]  # index, place, field, value
    mentors: list[tuple[int, Mentor]]
    sender: bool  # an organiser_email is written

    @classmethod
    def of(cls, programme: Programme) -> Written:
        sessions = list(enumerate(programme.sessions))
        return cls(
            programme.programme.timezone,
            [(i, m.id) for i, m in enumerate(programme.mentors)],
            [(i, f"session '{s.id}'", s.mentors) for i, s in sessions],
            [(i, s.id) for i, s in sessions],
            [(i, f"session '{s.id}'", f, t) for i, s in sessions
             for f, t in (("start", s.start), ("end", s.end)) if t is not None],
            list(enumerate(programme.mentors)),
            programme.programme.organiser_email is not None,
        )

    @classmethod
    def of_data(cls, data: dict[str, Any]) -> Written:
        head = data.get("programme")
        head = head if isinstance(head, dict) else {}
        zone = head.get("timezone", "Europe/Helsinki")
        mentors, sessions = _entries(data, "mentors"), _entries(data, "sessions")
        valid: list[tuple[int, Mentor]] = []
        for index, entry in mentors:
            with contextlib.suppress(ValidationError):  # reported already, field by field
                valid.append((index, Mentor.model_validate(entry)))
        # Mentors written as [mentors] rather than [[mentors]] are reported as such; every
        # session's mentors would otherwise be "unknown" as well.
        known = isinstance(data.get("mentors", []), list)
        return cls(
            zone if isinstance(zone, str) else None,
            [(i, e["id"]) for i, e in mentors if _is_id(e.get("id"))],
            [(i, _place(e, i), tuple(m for m in _listed(e.get("mentors")) if _is_id(m)))
             for i, e in sessions if known],
            [(i, e["id"]) for i, e in sessions if _is_id(e.get("id"))],
            [(i, _place(e, i), f, e[f]) for i, e in sessions for f in ("start", "end")
             if isinstance(e.get(f), datetime)],
            valid,
            "organiser_email" in head,
        )


def _entries(data: dict[str, Any], table: str) -> list[tuple[int, dict[str, Any]]]:
    items = data.get(table)
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def _is_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and SLUG_RE.fullmatch(value) is not None


def _listed(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _place(entry: dict[str, Any], index: int) -> str:
    return f"session '{entry['id']}'" if _is_id(entry.get("id")) else f"session #{index + 1}"


def check(programme: Programme, locator: Locator | None, name: str) -> list[Problem]:
    """Whole-programme checks that a single model cannot make."""
    return _checks(Written.of(programme), locator, name)


def _checks(written: Written, locator: Locator | None, name: str) -> list[Problem]:
    problems: list[Problem] = []

    def add(table: str | None, index: int | None, place: str, field: str | None, msg: str) -> None:
        line = None
        if locator is not None and table is not None:
            line = locator.line_of(table, index, field)
        problems.append(Problem(name, line, None, place, field, msg))

    tz = _timezone(written.timezone) if written.timezone is not None else None
    if tz is None and written.timezone is not None:
        zone = written.timezone
        close = difflib.get_close_matches(zone, sorted(available_timezones()), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else " (use an IANA name like Europe/Helsinki)"
        add("programme", None, "[programme]", "timezone", f"{zone!r} is not a known time zone{hint}")

    groups = [("mentors", written.mentor_ids), ("sessions", written.session_ids)]
    for table, ids in groups:
        kind = TABLES[table][0]
        seen: dict[str, int] = {}
        for index, ident in ids:
            if ident in seen:
                add(table, index, f"{kind} '{ident}'", "id",
                    f"the id is used twice (also by {kind} #{seen[ident] + 1}); ids must be unique")
            seen.setdefault(ident, index)

    mentor_ids = [ident for _, ident in written.mentor_ids]
    for index, place, listed in written.sessions:
        for mentor_id, count in Counter(listed).items():
            if mentor_id not in mentor_ids:
                close = difflib.get_close_matches(mentor_id, mentor_ids, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else (
                    " (add them as a [[mentors]] entry first)")
                add("sessions", index, place, "mentors", f"'{mentor_id}' is not a known mentor{hint}")
            if count > 1:
                add("sessions", index, place, "mentors", f"'{mentor_id}' is listed {count} times")
    for index, place, field, moment in written.times:
        problem = _local_time_problem(moment, tz) if tz is not None else None
        if problem:
            add("sessions", index, place, field, problem)

    # who cannot be reached by their channel
    for found in routing.mentor_problems(written.mentors, sender=written.sender):
        add(*found)

    targets: dict[tuple[str, str, str], str] = {}
    for index, mentor in written.mentors:
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
