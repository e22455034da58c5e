"""Loading and checking ``programme.toml``: every mistake becomes a located, readable Problem.

The file is edited by organisers, often in a hurry and not always in a code editor.
So a load either returns a fully valid ``Programme`` or raises ``ProgrammeError``
listing *every* problem, each naming the file, the line where we can find it, the
session or mentor id, and the field, in words that say how to fix it. Pydantic's
own messages are rephrased where they would talk about Python types.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ValidationError

from klash_sync.errors import Problem, ProgrammeError
from klash_sync.programme import routing
from klash_sync.programme.model import CalDAVTarget, Mentor, Programme, ProgrammeInfo, Session

# TOML tables of the file and the model each one is checked against, for "did you mean".
_TABLES: dict[str, tuple[str, type[BaseModel]]] = {
    "sessions": ("session", Session),
    "mentors": ("mentor", Mentor),
}


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
        raise ProgrammeError([_toml_problem(e, name)]) from None
    locator = _Locator(text)
    try:
        programme = Programme.model_validate(data)
    except ValidationError as e:
        problems = [_pydantic_problem(err, data, locator, name) for err in e.errors()]
        raise ProgrammeError(_ordered(problems)) from None
    problems = check(programme, locator, name)
    if problems:
        raise ProgrammeError(_ordered(problems))
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


_TOML_AT = re.compile(r"^(?P<msg>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)$")
_TOML_EOF = re.compile(r"^(?P<msg>.*?)\s*\(at end of document\)$")


def _toml_problem(e: tomllib.TOMLDecodeError, name: str) -> Problem:
    text = str(e)
    m = _TOML_AT.match(text)
    if m:
        msg = m["msg"]
        hint = _toml_hint(msg)
        return Problem(name, int(m["line"]), int(m["col"]), "TOML syntax", None, msg + hint)
    m = _TOML_EOF.match(text)
    if m:
        return Problem(name, None, None, "end of file", None,
                       f"{m['msg']} (a quote or bracket may be left open)")
    return Problem(name, None, None, "TOML syntax", None, text)


def _toml_hint(msg: str) -> str:
    if msg.startswith("Invalid value"):
        return (" (text must be in quotes; dates are written 2019-09-24 and times "
                "2019-09-24T10:00:00)")
    if "declared twice" in msg or "overwrite" in msg.lower():
        return " (each key may appear only once in a table)"
    return ""


@dataclass(frozen=True)
class _Entry:
    table: str
    index: int
    first_line: int  # the [[table]] header line, 1-based
    last_line: int


class _Locator:
    """Finds line numbers of tables and keys in the TOML text, so messages can point at them.

    tomllib keeps no positions, so we scan the text for headers. This is a best effort:
    when a line cannot be found the message simply goes without it.
    """

    _HEADER = re.compile(r"^\s*\[\[\s*(sessions|mentors)\s*\]\]|^\s*\[\s*([A-Za-z_.\"-]+)\s*\]")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.entries: list[_Entry] = []
        self.tables: dict[str, tuple[int, int]] = {}
        counts: Counter[str] = Counter()
        starts: list[tuple[str, int | None, int]] = []
        for number, line in enumerate(self.lines, start=1):
            m = self._HEADER.match(line)
            if not m:
                continue
            if m.group(1):
                starts.append((m.group(1), counts[m.group(1)], number))
                counts[m.group(1)] += 1
            else:
                starts.append((m.group(2), None, number))
        starts.append(("", None, len(self.lines) + 1))
        for (table, index, first), (_, _, nxt) in pairwise(starts):
            if index is None:
                self.tables.setdefault(table, (first, nxt - 1))
            else:
                self.entries.append(_Entry(table, index, first, nxt - 1))

    def entry(self, table: str, index: int) -> _Entry | None:
        return next((e for e in self.entries if e.table == table and e.index == index), None)

    def line_of(self, table: str, index: int | None, key: str | None) -> int | None:
        """Line of ``key`` inside entry ``index`` of ``table`` (or of the entry's header)."""
        if index is None:
            span = self.tables.get(table)
            if span is None:
                return None
            first, last = span
        else:
            found = self.entry(table, index)
            if found is None:
                return None
            first, last = found.first_line, found.last_line
        if key is None:
            return first
        pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*[=.]")
        for number in range(first, min(last, len(self.lines)) + 1):
            if pattern.match(self.lines[number - 1]):
                return number
        return first


def _describe_entry(data: dict[str, Any], table: str, index: int) -> str:
    kind = _TABLES[table][0]
    items = data.get(table)
    if isinstance(items, list) and index < len(items) and isinstance(items[index], dict):
        ident = items[index].get("id")
        if isinstance(ident, str) and ident:
            return f"{kind} '{ident}'"
    return f"{kind} #{index + 1}"


def _pydantic_problem(
    err: Any, data: dict[str, Any], locator: _Locator, name: str
) -> Problem:
    loc = tuple(err["loc"])
    line: int | None = None
    model: type[BaseModel] = Programme
    if loc and loc[0] in _TABLES and len(loc) >= 2 and isinstance(loc[1], int):
        table, index = str(loc[0]), loc[1]
        place = _describe_entry(data, table, index)
        rest = tuple(str(p) for p in loc[2:])
        model = _TABLES[table][1]
        if rest[:1] == ("caldav",):
            model = CalDAVTarget
            place += ", [caldav]"
            rest = rest[1:]
        field = ".".join(rest) or None
        key = rest[0] if rest else None
        line = locator.line_of(table, index, key if model is not CalDAVTarget else None)
    elif loc and loc[0] == "programme":
        place = "[programme]"
        model = ProgrammeInfo
        field = ".".join(str(p) for p in loc[1:]) or None
        line = locator.line_of("programme", None, str(loc[1]) if len(loc) > 1 else None)
    elif loc:
        place = "top level"
        field = str(loc[0])
        if loc[0] in _TABLES and err["type"] in ("tuple_type", "list_type"):
            return Problem(name, None, None, "top level", field,
                           f"write each {_TABLES[str(loc[0])][0]} as a [[{loc[0]}]] table")
    else:
        place, field = "top level", None
    message = _message(err, model, field)
    return Problem(name, line, None, place, field, message)


def _message(err: Any, model: type[BaseModel], field: str | None) -> str:
    kind: str = err["type"]
    given = err.get("input")
    got = f" (got {_short(given)})" if not isinstance(given, dict | list) else ""
    last = field.split(".")[-1] if field else None
    if kind == "missing":
        if model is ProgrammeInfo and field is None:
            return "the [programme] table is missing (it needs name, uid_domain and organiser)"
        return "is required but missing"
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(last or "", list(model.model_fields), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else (
            f"; known keys are: {', '.join(model.model_fields)}")
        return f"is not a known key{hint}"
    if kind.startswith("date_") or (last in ("date", "end_date") and "date" in kind):
        return f"is not a date{got}; write it as 2019-09-24, without quotes"
    if kind.startswith("datetime_"):
        return (f"is not a date and time{got}; write it as 2019-09-24T10:00:00 (local time "
                "of the programme) or with an offset, 2019-09-24T10:00:00+03:00")
    if kind == "literal_error":
        return f"must be one of {err['ctx']['expected']}{got}"
    if kind == "string_pattern_mismatch":
        return _pattern_message(last, got)
    if kind in ("value_error", "assertion_error"):
        return str(err["ctx"]["error"])
    if kind == "string_type":
        return f"must be text in quotes{got}"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list in brackets, e.g. [\"a\", \"b\"]{got}"
    return f"{err['msg']}{got}"


def _pattern_message(field: str | None, got: str) -> str:
    if field == "uid_domain":
        return f"must be a domain name such as 'klash.example.fi'{got}"
    if field == "email":
        return f"is not an e-mail address{got}"
    if field == "password_env":
        return f"must be the name of an environment variable such as KLASH_PW_MILJA{got}"
    if field in ("url", "ca_bundle"):
        return f"must be an http:// or https:// address{got}"
    return f"has an invalid form{got}"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _ordered(problems: list[Problem]) -> list[Problem]:
    """Unique problems in file order, so an organiser can fix them top to bottom."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line is None, p.line or 0))


def check(programme: Programme, locator: _Locator | None, name: str) -> list[Problem]:
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
        kind = _TABLES[table][0]
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
