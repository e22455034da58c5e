"""What the service says about itself: /healthz (JSON) and /metrics (Prometheus text).

Metrics use prometheus-client's own registry and exposition, so the output is what
Prometheus expects by construction. Nothing here ever includes a secret: calendar
errors are the one-line reasons from the adapter, which never contain credentials,
and everything is passed through the log redactor once more before it leaves.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from klash_sync import __version__
from klash_sync.deliver.invite.outbox import MentorOutbox
from klash_sync.logs import redact
from klash_sync.service.live import Live


class Metrics:
    """The counters of one running service."""

    def __init__(self) -> None:
        disable_created_metrics()  # *_created series only double the output
        self.registry = CollectorRegistry(auto_describe=True)
        self.syncs = Counter("klash_calendar_syncs", "Calendar syncs, by result.",
                             ["result"], registry=self.registry)
        self.actions = Counter("klash_sync_actions", "Writes made to calendars, by kind.",
                               ["kind"], registry=self.registry)
        self.failures = Counter("klash_calendar_failures", "Failed calendar syncs, by mentor.",
                                ["mentor"], registry=self.registry)
        self.duration = Histogram("klash_calendar_sync_seconds", "Duration of one calendar sync.",
                                  registry=self.registry,
                                  buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.requests = Counter("klash_feed_requests", "HTTP requests for feeds and pages.",
                                ["kind", "status"], registry=self.registry)
        self.reloads = Counter("klash_programme_reloads", "Programme loads, by result.",
                               ["result"], registry=self.registry)
        self.valid = Gauge("klash_programme_valid", "1 if the programme file on disk is valid.",
                           registry=self.registry)
        self.sessions = Gauge("klash_programme_sessions", "Sessions in the programme in use.",
                              registry=self.registry)
        self.loaded = Gauge("klash_programme_loaded_timestamp_seconds",
                            "When the programme in use was loaded (Unix time).",
                            registry=self.registry)
        self.failing = Gauge("klash_calendars_failing", "Calendars whose last sync failed.",
                             registry=self.registry)

        self.invitations = Gauge("klash_invitations", "Invitations per mentor: last sent (sent), "
                                 "on their way (pending) or refused for good (failed).",
                                 ["mentor", "state"], registry=self.registry)

    def set_invitations(self, status: dict[str, MentorOutbox]) -> None:
        self.invitations.clear()
        for line in status.values():
            for state in ("sent", "pending", "failed"):
                self.invitations.labels(mentor=line.mentor, state=state).set(getattr(line, state))

    def request(self, kind: str, status: int) -> None:
        self.requests.labels(kind=kind, status=str(status)).inc()

    def render(self) -> bytes:
        return redact(generate_latest(self.registry).decode()).encode()


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def health(live: Live, *, now: datetime, unhealthy_after: float, programme_path: str,
           invites: dict[str, MentorOutbox] | None = None,
           invite_problems: list[str] | None = None) -> tuple[int, bytes]:
    """Status code and JSON body for /healthz.

    503 when the programme on disk is invalid, when none has ever loaded, or when a
    calendar has been failing for longer than ``unhealthy_after`` seconds.
    """
    snapshot = live.snapshot
    calendars = []
    unhealthy = []
    for status in sorted(live.calendars.values(), key=lambda c: (c.mentor, c.calendar)):
        stale = (not status.ok and status.failing_since is not None
                 and (now - status.failing_since).total_seconds() > unhealthy_after)
        if stale:
            unhealthy.append(status.mentor)
        calendars.append({
            "mentor": status.mentor,
            "calendar": status.calendar,
            "ok": status.ok,
            "last_sync": _iso(status.last_sync),
            "last_success": _iso(status.last_success),
            "failing_since": _iso(status.failing_since),
            "error": status.error,
            "created": status.created,
            "updated": status.updated,
            "deleted": status.deleted,
        })
    problems = []
    if live.programme_error:
        problems.append("programme file invalid")
    if snapshot is None:
        problems.append("no programme loaded")
    if live.state_error:
        problems.append(live.state_error)
    if unhealthy:
        problems.append(f"calendars failing for over {int(unhealthy_after)} s: {', '.join(unhealthy)}")
    problems.extend(invite_problems or [])
    body = {
        "status": "ok" if not problems else "unhealthy",
        "problems": problems,
        "version": __version__,
        "programme": {
            "path": programme_path,
            "loaded_at": _iso(snapshot.loaded_at) if snapshot else None,
            "sessions": len(snapshot.programme.sessions) if snapshot else 0,
            "valid_on_disk": live.programme_error is None,
            "error": live.programme_error,
            "error_at": _iso(live.programme_error_at),
        },
        "calendars": calendars,
        "invitations": [
            {"mentor": line.mentor, "sent": line.sent, "pending": line.pending,
             "failed": line.failed, "error": line.answer, "failing_since": _iso(line.failing_since),
             "sessions": line.sessions}
            for line in sorted((invites or {}).values(), key=lambda x: x.mentor)
        ],
    }
    text = redact(json.dumps(body, ensure_ascii=False, indent=1))
    return (200 if not problems else 503), text.encode()
