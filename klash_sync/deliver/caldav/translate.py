"""Library and network failures, translated into the ``TargetError`` tree.

The adapter's requests fail in the HTTP library's words (a dozen exception classes,
nested causes, URLs with query strings). What reaches the log, the page and the CLI
is one of our kinds with a one-line reason in the words an operator searches for
("connection refused", "timed out"), never containing a credential.
"""

from __future__ import annotations

from typing import Any

from klash_sync.errors import TargetError, TargetProtocolError, TargetUnreachable


def short_body(response: Any) -> str:
    """The start of a response's body on one line, for an error message."""
    try:
        text = response.content[:300].decode("utf-8", "replace")
    except Exception:
        return ""
    return " ".join(text.split())[:200]


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:200] or type(e).__name__


def translate(e: BaseException, where: str = "") -> TargetError:
    """Library and network exceptions -> our tree, by kind, with a short one-line reason.

    The words are the ones an operator searches for: "connection refused", "timed out".
    """
    if isinstance(e, TargetError):
        return e
    name = type(e).__name__.lower()
    text = _chain(e)
    at = f" {where}" if where else " the server"
    if "timeout" in name or "timed out" in text:
        return TargetUnreachable(f"no answer from{at} in time (timed out)")
    if "ssl" in name or "certificate" in text:
        return TargetUnreachable(f"TLS verification failed for{at}; add its CA with ca_bundle")
    if "refused" in text:
        return TargetUnreachable(f"cannot connect to{at}: connection refused")
    if "name resolution" in text or "nodename" in text or "getaddrinfo" in text \
            or "name or service not known" in text:
        return TargetUnreachable(f"cannot resolve the server's name{at if where else ''}")
    if ("reset" in text or "aborted" in text or "remote end closed" in text or "closed" in text
            or "connection" in name or "protocol" in name):
        return TargetUnreachable(f"the connection to{at} was closed unexpectedly")
    return TargetProtocolError(f"{type(e).__name__}: {_reason(e)}")


def _chain(e: BaseException) -> str:
    """The whole text of an exception and its causes, lower-cased: what it was, not how long."""
    parts, seen = [], 0
    current: BaseException | None = e
    while current is not None and seen < 8:
        parts.append(f"{type(current).__name__}: {current}")
        current, seen = current.__cause__ or current.__context__, seen + 1
    return " ".join(" ".join(parts).split()).lower()


def stale(e: BaseException) -> bool:
    """A pooled connection the server had closed: the request never got an answer, nor a timeout."""
    text = _chain(e)
    if "timed out" in text or "timeout" in type(e).__name__.lower() or "refused" in text:
        return False
    return any(w in text for w in ("remote end closed", "reset by peer", "aborted", "broken pipe",
                                   "connection closed", "without response", "disconnected"))
