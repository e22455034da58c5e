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

# C0 and C1 control characters other than tab and newline (NEL, U+0085, is a C1 one). CR
# is normalised to LF before this check, so CRLF and lone CR in a multi-line text are
# accepted.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# The line and paragraph separators are no control characters, but Python's splitlines,
# JavaScript (ical.js) and mail clients break lines at them: a title with one shows as two
# lines in one client and one in another, and a header with one may be refused by a server.
_SEPARATOR_RE = re.compile("[\u2028\u2029]")
_SEPARATOR_WORDS = ("contains a line or paragraph separator (U+2028 or U+2029), invisible in "
                    "most editors")

# An e-mail address as RFC 5322's addr-spec in its dot-atom form: what every server takes.
# Quoted local parts and domain literals are legal but need quoting in headers and iMIP's
# mailto: URIs; no organisation hands such an address out, so they are refused.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_RE = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")


def slugify(text: str) -> str:
    """ASCII slug of a name: 'Milja Köpsi' -> 'milja-kopsi', 'Ylöjärvi' -> 'ylojarvi'."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")


def _slug(value: str) -> str:
    if not SLUG_RE.fullmatch(value):
        suggestion = slugify(value)
        hint = f" such as '{suggestion}'" if suggestion else ""
        # repr: the id as written may hold a line break or an escape sequence, and the
        # message is one line on an organiser's terminal.
        raise ValueError(
            f"{value!r} is not a valid id: use lower-case ASCII letters, digits and single "
            f"hyphens{hint}"
        )
    return value


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must fit on one line (it contains a line break)")
    if _SEPARATOR_RE.search(value):
        raise ValueError(f"must fit on one line (it {_SEPARATOR_WORDS}); remove it")
    if _CONTROL_RE.search(value) or "\t" in value:
        raise ValueError("contains a control character; remove it")
    return value.strip()


def _no_control(value: str) -> str:
    """A file name: kept as written (no strip), but nothing a terminal or a log would act on."""
    if _CONTROL_RE.search(value) or _SEPARATOR_RE.search(value) or "\t" in value or "\n" in value:
        raise ValueError("contains a line break or a control character; write the path on one line")
    return value


def _email(value: str) -> str:
    """One bare address, or a message that says what to write instead.

    Whatever passes goes into SMTP's RCPT TO and MAIL FROM, the To and From headers and
    iMIP's ATTENDEE and ORGANIZER as it is: a name, a list, a bracket or a control
    character there would make the server refuse the message (for every mentor of a
    batch) or send it somewhere else.
    """
    example = "write one bare address such as 'milja.kopsi@example.fi'"
    if (_CONTROL_RE.search(value) or _SEPARATOR_RE.search(value) or "\n" in value
            or "\t" in value):
        raise ValueError(f"contains a control character or a line break; {example}")
    if any(c in value for c in "<>,;\"()[]:"):
        raise ValueError(f"{value!r} is not a single address; {example}, without a name, "
                         "angle brackets or a list")
    if any(c.isspace() for c in value):
        raise ValueError(f"{value!r} contains a space; {example}, without a name")
    local, at, domain = value.rpartition("@")
    if not at or not local:
        raise ValueError(f"{value!r} is not an e-mail address; {example}")
    if not domain.isascii():
        raise ValueError(f"{value!r}: write the domain in its ASCII form ('xn--…', as the "
                         f"domain's registrar shows it); {example}")
    # RFC 6531: letters beyond ASCII may stand in a local part; such an address is sent
    # only through a server that announces SMTPUTF8 (deliver/invite/smtp.py)
    ascii_local = "".join(c if c.isascii() or not c.isalnum() else "a" for c in local)
    if "@" in local or not _LOCAL_RE.fullmatch(ascii_local) or len(local) > 64:
        raise ValueError(f"{value!r}: the part before '@' is not valid (dots only between "
                         f"characters, at most 64 characters); {example}")
    if not _DOMAIN_RE.fullmatch(domain) or len(value) > 254:
        raise ValueError(f"{value!r}: '{domain}' is not a domain name such as 'example.fi'; "
                         f"{example}")
    return value


def _not_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


def _multi_line(value: str) -> str:
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    if _SEPARATOR_RE.search(value):
        raise ValueError(f"{_SEPARATOR_WORDS}; use an ordinary line break instead")
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
            f"{value!r} is not an ISO 8601 duration; write e.g. \"P1D\" (a day) or \"PT30M\""
        ) from None
    if not isinstance(parsed, timedelta):  # icalendar may return a Period-like object
        raise ValueError(f"{value!r} is not a duration")
    if parsed < timedelta(0):
        raise ValueError(f"{value!r} is negative; reminders are given as time before the start")
    return parsed


Slug = Annotated[str, StringConstraints(max_length=64), AfterValidator(_slug)]
OneLine = Annotated[str, StringConstraints(max_length=500), AfterValidator(_one_line)]
RequiredLine = Annotated[OneLine, AfterValidator(_not_empty)]
MultiLine = Annotated[str, StringConstraints(max_length=200_000), AfterValidator(_multi_line)]
Email = Annotated[str, StringConstraints(max_length=1000), AfterValidator(_email)]
FilePath = Annotated[str, StringConstraints(max_length=4096), AfterValidator(_no_control)]
Reminder = Annotated[timedelta, BeforeValidator(_duration)]
HttpUrl = Annotated[
    str,
    StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2000),
    AfterValidator(_one_line),
]
Status = Literal["confirmed", "tentative", "cancelled"]
