"""The field types of the programme: what an id, a line of text, a reminder or a URL may be.

Each type is a constraint plus a validator whose message tells an organiser what to
write instead ("use lower-case ASCII letters, digits and single hyphens such as
'milja-kopsi'"), so a mistake is caught when the file is loaded, never halfway
through a sync. ``model`` builds the programme's tables from these.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from typing import Annotated, Literal

from icalendar.prop import vDuration
from pydantic import AfterValidator, BeforeValidator, StringConstraints

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

# C0 and C1 control characters other than tab and newline. CR is normalised to LF
# before this check, so CRLF and lone CR in a multi-line text are accepted.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def slugify(text: str) -> str:
    """ASCII slug of a name: 'Milja Köpsi' -> 'milja-kopsi', 'Ylöjärvi' -> 'ylojarvi'."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")


def _slug(value: str) -> str:
    if not SLUG_RE.match(value):
        suggestion = slugify(value)
        hint = f" such as '{suggestion}'" if suggestion else ""
        raise ValueError(
            f"'{value}' is not a valid id: use lower-case ASCII letters, digits and single "
            f"hyphens{hint}"
        )
    return value


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must fit on one line (it contains a line break)")
    if _CONTROL_RE.search(value) or "\t" in value:
        raise ValueError("contains a control character; remove it")
    return value.strip()


def _not_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


def _multi_line(value: str) -> str:
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    if _CONTROL_RE.search(value):
        raise ValueError("contains a control character other than a line break or tab; remove it")
    return value.strip()


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("write a reminder as an ISO 8601 duration string such as \"P1D\" or \"PT2H\"")
    try:
        parsed = vDuration.from_ical(value.strip().upper())
    except ValueError:
        raise ValueError(
            f"'{value}' is not an ISO 8601 duration; write e.g. \"P1D\" (a day) or \"PT30M\""
        ) from None
    if not isinstance(parsed, timedelta):  # icalendar may return a Period-like object
        raise ValueError(f"'{value}' is not a duration")
    if parsed < timedelta(0):
        raise ValueError(f"'{value}' is negative; reminders are given as time before the start")
    return parsed


Slug = Annotated[str, StringConstraints(max_length=64), AfterValidator(_slug)]
OneLine = Annotated[str, StringConstraints(max_length=500), AfterValidator(_one_line)]
RequiredLine = Annotated[OneLine, AfterValidator(_not_empty)]
MultiLine = Annotated[str, StringConstraints(max_length=200_000), AfterValidator(_multi_line)]
Reminder = Annotated[timedelta, BeforeValidator(_duration)]
HttpUrl = Annotated[
    str,
    StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2000),
    AfterValidator(_one_line),
]
Status = Literal["confirmed", "tentative", "cancelled"]
