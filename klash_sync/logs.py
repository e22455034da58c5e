"""Logging set-up: one line per event, readable text by default or JSON for log shippers.

A redacting filter removes every registered secret value (CalDAV passwords, the
server secret, embedded-server passwords) from messages and arguments before they
are formatted. Code never logs a secret on purpose; this filter is the second lock,
for the day a library puts one into an exception message.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime

_secrets: set[str] = set()
_lock = threading.Lock()
REDACTED = "[redacted]"


def register_secret(value: str | bytes | None) -> None:
    """Remember a secret so that no log line ever shows it."""
    if not value:
        return
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    if len(text) >= 4:  # shorter strings would redact ordinary words
        with _lock:
            _secrets.add(text)


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def os_error(error: BaseException | None) -> OSError | None:
    """The OSError behind an exception, however the library wrapped it (cause or context)."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, OSError):
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


class RedactingFilter(logging.Filter):
    """Redacts every message; and says an embedded server's I/O error in one line.

    Radicale logs the traceback of a failed write (a full or read-only state volume) at
    each request; the cause is the disk's, reported once by the service's own health
    check, so here it is one line with the error, not a traceback per request.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        cause = os_error(record.exc_info[1] if record.exc_info else None)
        if record.name.startswith("radicale") and cause is not None:
            if (cause.strerror or "") not in record.msg:
                record.msg = redact(f"{record.msg} ({cause.strerror or cause})")
            record.exc_info = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("calendar", "mentor", "event"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def setup(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once; safe to call again (replaces our handler)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_klash", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._klash = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that log request bodies or headers at DEBUG stay at WARNING.
    for noisy in ("caldav", "niquests", "urllib3", "urllib3_future", "radicale"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # "Task queue depth" warnings mean only that all threads were busy for a moment.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
