"""/healthz: the service's health as JSON, judged once over every channel's status.

Degraded (503) means the service as a whole is not doing its job and an operator is
needed, which is what Docker's HEALTHCHECK and an orchestrator act on:

* the programme on disk is not the one in use: invalid, none ever loaded, or valid but
  not applied because the state store cannot be written;
* the state store cannot be written (a full or read-only volume, a removed directory,
  another program holding the database);
* a channel has failed for *every* one of its recipients for longer than
  ``unhealthy_after`` seconds (the mail server is gone, not one mailbox), or cannot run
  at all (no SMTP server, cancellations held for the operator's confirmation).

One recipient's failure (a bounced address, one mentor's calendar server down) is not
the service's: restarting would not help, and would interrupt everyone else's
deliveries. It answers 200 and is listed under ``warnings`` with the mentor and since
when, as on the page, in ``klash-sync invites`` and in the metrics. Each problem and
warning says which part, since when and why. Nothing here includes a secret: reasons
are the adapters' one-line reasons, and the whole body goes through the log redactor
once more before it leaves.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from klash_sync import __version__
from klash_sync.logs import redact
from klash_sync.status import ChannelStatus, Live, Record

Finding = dict[str, Any]  # {"part", "since", "reason"} and, for one recipient, "mentor"


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


def finding(part: str, since: datetime | None, reason: str, mentor: str | None = None) -> Finding:
    found: Finding = {"part": part, "since": iso(since), "reason": reason}
    if mentor is not None:
        found["mentor"] = mentor
    return found


def channel_findings(channel: ChannelStatus, now: datetime, unhealthy_after: float
                     ) -> tuple[list[Finding], list[Finding]]:
    """(problems, warnings) of one channel, naming mentors (never addresses)."""
    records = channel.ordered()
    failing = [r for r in records if not r.ok]
    warnings = [finding(channel.section, r.failing_since, r.error or "failing", r.mentor)
                for r in failing]
    problems = [finding(channel.section, None, reason) for reason in channel.problems]
    if records and len(failing) == len(records) and all(
            r.refused or r.stale(now, unhealthy_after) for r in failing):
        since = min((r.failing_since for r in failing if r.failing_since), default=None)
        names = ", ".join(sorted({r.mentor for r in failing}))
        problems.append(finding(channel.section, since, f"failing for every recipient for over "
                                f"{int(unhealthy_after)} s: {names}"))
    return problems, warnings


def judge(live: Live, *, now: datetime, unhealthy_after: float
          ) -> tuple[list[Finding], list[Finding]]:
    """What is wrong with the service as a whole (problems), and with single recipients."""
    problems = []
    if live.programme_error:
        problems.append(finding("programme", live.programme_error_at, "programme file invalid"))
    elif live.unapplied:
        problems.append(finding("programme", live.unapplied_at, live.unapplied))
    if live.snapshot is None:
        problems.append(finding("programme", None, "no programme loaded"))
    if live.state_error:
        problems.append(finding("state", live.state_error_at, live.state_error))
    warnings = []
    for channel in live.channels.values():
        found, warned = channel_findings(channel, now, unhealthy_after)
        problems += found
        warnings += warned
    return problems, warnings


def health(live: Live, *, now: datetime, unhealthy_after: float,
           programme_path: str) -> tuple[int, bytes]:
    """Status code and JSON body for /healthz."""
    snapshot = live.snapshot
    channels = list(live.channels.values())
    problems, warnings = judge(live, now=now, unhealthy_after=unhealthy_after)
    body: dict[str, Any] = {
        "status": "ok" if not problems else "degraded",
        "problems": problems,
        "warnings": warnings,
        "version": __version__,
        "programme": {
            "path": programme_path,
            "loaded_at": iso(snapshot.loaded_at) if snapshot else None,
            "sessions": len(snapshot.programme.sessions) if snapshot else 0,
            "valid_on_disk": live.programme_error is None,
            "applied": live.programme_error is None and live.unapplied is None,
            "error": live.programme_error,
            "error_at": iso(live.programme_error_at),
        },
    }
    for channel in channels:
        body[channel.section] = [record_json(channel, r) for r in channel.ordered()]
    text = redact(json.dumps(body, ensure_ascii=False, indent=1))
    return (200 if not problems else 503), text.encode()
