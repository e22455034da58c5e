"""Turning TOML and pydantic errors into located Problems, in words an organiser can act on.

tomllib and pydantic report mistakes in their own terms (Python types, error codes,
positions in a dict). Each becomes a ``Problem``: the file, the line where we can find
it (``Locator`` scans the text, since tomllib keeps no positions), the session or
mentor id, the field, and a message that says how to fix it, with a hint where one
helps ("did you mean 'mentors'?", "write it as 2019-09-24").
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from pydantic import BaseModel

from klash_sync.errors import Problem
from klash_sync.programme.fields import SLUG_RE
from klash_sync.programme.model import CalDAVTarget, Mentor, Programme, ProgrammeInfo, Session

# TOML tables of the file and the model each one is checked against, for "did you mean".
TABLES: dict[str, tuple[str, type[BaseModel]]] = {
    "sessions": ("session", Session),
    "mentors": ("mentor", Mentor),
}


_TOML_AT = re.compile(r"^(?P<msg>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)$")
_TOML_EOF = re.compile(r"^(?P<msg>.*?)\s*\(at end of document\)$")


def toml_problem(e: tomllib.TOMLDecodeError, name: str) -> Problem:
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


class Locator:
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
    kind = TABLES[table][0]
    items = data.get(table)
    if isinstance(items, list) and index < len(items) and isinstance(items[index], dict):
        ident = items[index].get("id")
        if isinstance(ident, str) and SLUG_RE.fullmatch(ident):  # not an id's line break
            return f"{kind} '{ident}'"
    return f"{kind} #{index + 1}"


def pydantic_problem(
    err: Any, data: dict[str, Any], locator: Locator, name: str
) -> Problem:
    loc = tuple(err["loc"])
    line: int | None = None
    model: type[BaseModel] = Programme
    if loc and loc[0] in TABLES and len(loc) >= 2 and isinstance(loc[1], int):
        table, index = str(loc[0]), loc[1]
        place = _describe_entry(data, table, index)
        rest = tuple(str(p) for p in loc[2:])
        model = TABLES[table][1]
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
        if loc[0] in TABLES and err["type"] in ("tuple_type", "list_type"):
            return Problem(name, None, None, "top level", field,
                           f"write each {TABLES[str(loc[0])][0]} as a [[{loc[0]}]] table")
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


def ordered(problems: list[Problem]) -> list[Problem]:
    """Unique problems in file order, so an organiser can fix them top to bottom."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line is None, p.line or 0))

