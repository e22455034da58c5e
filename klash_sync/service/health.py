"""/healthz: the service's health as JSON, judged once over every channel's status.

The body has the programme in use, then one list per channel under its section name
("calendars", "invitations"), each record in the same shape. The answer is 503 when
the programme on disk is invalid, when none has ever loaded, when the state store can
no longer be written, or when some recipient of some channel is failing: refused for
good, or failing for longer than ``unhealthy_after`` seconds. Nothing here ever
includes a secret: errors are the adapters' one-line reasons, and the whole body goes
through the log redactor once more before it leaves.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from klash_sync import __version__
from klash_sync.logs import redact
from klash_sync.status import ChannelStatus, Live, Record


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def record_json(channel: ChannelStatus, record: Record) -> dict[str, Any]:
    body: dict[str, Any] = {"mentor": record.mentor}
    if channel.unit is not None:
        body[channel.unit] = record.key
    body.update({
        "ok": record.ok,
        "last_sync": iso(record.last_attempt),
        "last_success": iso(record.last_success),
        "failing_since": iso(record.failing_since),
        "error": record.error,
        **record.counts,
        "sessions": list(record.sessions),
    })
    return body


def channel_problems(channel: ChannelStatus, now: datetime, unhealthy_after: float) -> list[str]:
    """What is wrong with one channel, naming mentors (never addresses)."""
    problems = []
    refused = sorted({r.mentor for r in channel.records.values() if r.refused})
    stale = sorted({r.mentor for r in channel.records.values()
                    if not r.refused and r.stale(now, unhealthy_after)})
    if refused:
        problems.append(f"{channel.section} failing: {', '.join(refused)}")
    if stale:
        problems.append(f"{channel.section} failing for over {int(unhealthy_after)} s: {', '.join(stale)}")
    return problems + list(channel.problems)


def health(live: Live, *, now: datetime, unhealthy_after: float,
           programme_path: str) -> tuple[int, bytes]:
    """Status code and JSON body for /healthz."""
    snapshot = live.snapshot
    channels = list(live.channels.values())
    problems = []
    if live.programme_error:
        problems.append("programme file invalid")
    if snapshot is None:
        problems.append("no programme loaded")
    if live.state_error:
        problems.append(live.state_error)
    for channel in channels:
        problems.extend(channel_problems(channel, now, unhealthy_after))
    body: dict[str, Any] = {
        "status": "ok" if not problems else "unhealthy",
        "problems": problems,
        "version": __version__,
        "programme": {
            "path": programme_path,
            "loaded_at": iso(snapshot.loaded_at) if snapshot else None,
            "sessions": len(snapshot.programme.sessions) if snapshot else 0,
            "valid_on_disk": live.programme_error is None,
            "error": live.programme_error,
            "error_at": iso(live.programme_error_at),
        },
    }
    for channel in channels:
        body[channel.section] = [record_json(channel, r) for r in channel.ordered()]
    text = redact(json.dumps(body, ensure_ascii=False, indent=1))
    return (200 if not problems else 503), text.encode()
