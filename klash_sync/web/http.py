"""Small HTTP helpers for the WSGI app: conditional requests and content negotiation.

Kept apart from the routes so that the rules of RFC 9110 live in one place and can
be tested on their own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def parse_http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def etag_matches(header: str, etags: tuple[str, ...]) -> bool:
    """If-None-Match with the weak comparison RFC 9110 §13.1.2 asks for.

    A malformed header matches nothing, so the client simply gets the full body.
    """
    header = header.strip()
    if header == "*":
        return True
    wanted = {e.removeprefix("W/") for e in etags}
    for part in header.split(","):
        tag = part.strip().removeprefix("W/")
        if len(tag) >= 2 and tag.startswith('"') and tag.endswith('"') and tag in wanted:
            return True
    return False


def not_modified(environ: dict[str, Any], etags: tuple[str, ...], last_modified: datetime) -> bool:
    """Whether a GET/HEAD may be answered 304. If-None-Match wins over If-Modified-Since."""
    inm = environ.get("HTTP_IF_NONE_MATCH")
    if inm is not None:
        return etag_matches(inm, etags)
    ims = environ.get("HTTP_IF_MODIFIED_SINCE")
    if ims:
        since = parse_http_date(ims)
        if since is not None:
            return last_modified.replace(microsecond=0) <= since
    return False


def accepts_gzip(environ: dict[str, Any]) -> bool:
    """Accept-Encoding allows gzip (q > 0), explicitly or through '*'."""
    header = environ.get("HTTP_ACCEPT_ENCODING", "")
    star: bool | None = None
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        name = name.strip().lower()
        if name in ("gzip", "x-gzip"):
            return q > 0
        if name == "*":
            star = q > 0
    return bool(star)


def preferred_language(environ: dict[str, Any], query: dict[str, str], supported: tuple[str, ...]) -> str:
    """?lang= first, then Accept-Language in order of q, else the first supported one."""
    chosen = query.get("lang", "")
    if chosen in supported:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(environ.get("HTTP_ACCEPT_LANGUAGE", "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in supported and q > 0:
            ranked.append((-q, index, primary))
    return sorted(ranked)[0][2] if ranked else supported[0]
