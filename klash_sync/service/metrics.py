"""/metrics: the service's counters and, computed at each scrape, gauges over every channel's status.

prometheus-client's own registry and exposition, so the output is what Prometheus
expects by construction. Every channel gets the same series, named after it: runs by
result, writes by kind, failures by mentor, run durations (the CalDAV channel keeps
the names its dashboards know, ``klash_calendar_syncs`` and friends), plus
``klash_{section}_failing`` and, for counts that are levels, ``klash_{section}{mentor,state}``
(``klash_invitations``). ``klash_answers{session,answer}`` counts who is coming, from the
answers the daemon last read into ``Live``. ``klash_healthy`` and ``klash_health_problems{part}`` carry the
verdict /healthz gives (health.py), so an alert needs no HTTP probe; per-recipient
failures are in ``klash_{section}_failing``. Everything passes the log redactor once
more before it leaves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from klash_sync.logs import redact
from klash_sync.status import ChannelStatus, Live

# Series names of channels that had them before there was more than one channel.
KNOWN_NAMES = {"caldav": ("klash_calendar_syncs", "klash_sync_actions", "klash_calendar_failures",
                          "klash_calendar_sync_seconds")}


@dataclass(frozen=True)
class _Runs:
    runs: Counter
    actions: Counter
    failures: Counter
    seconds: Histogram


class Metrics:
    """The counters of one running service."""

    def __init__(self) -> None:
        disable_created_metrics()  # *_created series only double the output
        self.registry = CollectorRegistry(auto_describe=True)
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
        self.healthy = Gauge("klash_healthy", "1 while /healthz answers ok, 0 while degraded.",
                             registry=self.registry)
        self.problems = Gauge("klash_health_problems",
                              "What makes /healthz degraded, by part (programme, state, a channel).",
                              ["part"], registry=self.registry)
        self.answers = Gauge("klash_answers", "Mentors per session by answer (accepted, tentative, "
                             "declined, none): who is coming.", ["session", "answer"],
                             registry=self.registry)
        self._runs: dict[str, _Runs] = {}
        self._failing: dict[str, Gauge] = {}
        self._levels: dict[str, Gauge] = {}

    def open(self, channel: str) -> None:
        """Register a channel's run series (at start, so they exist before its first run)."""
        if channel in self._runs:
            return
        runs, actions, failures, seconds = KNOWN_NAMES.get(channel, (
            f"klash_{channel}_runs", f"klash_{channel}_actions", f"klash_{channel}_failures",
            f"klash_{channel}_run_seconds"))
        self._runs[channel] = _Runs(
            Counter(runs, f"Runs of the {channel} channel, by result.", ["result"],
                    registry=self.registry),
            Counter(actions, f"Writes made by the {channel} channel, by kind.", ["kind"],
                    registry=self.registry),
            Counter(failures, f"Failed runs of the {channel} channel, by mentor.", ["mentor"],
                    registry=self.registry),
            Histogram(seconds, f"Duration of one run of the {channel} channel.", registry=self.registry,
                      buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)),
        )

    def ran(self, channel: str, *, ok: bool, seconds: float, actions: Mapping[str, int],
            failed: Iterable[str]) -> None:
        """One run of one unit of a channel has ended."""
        self.open(channel)
        series = self._runs[channel]
        series.runs.labels(result="ok" if ok else "failed").inc()
        series.seconds.observe(seconds)
        for kind, count in actions.items():
            if count:
                series.actions.labels(kind=kind).inc(count)
        for mentor in failed:
            series.failures.labels(mentor=mentor).inc()

    def request(self, kind: str, status: int) -> None:
        self.requests.labels(kind=kind, status=str(status)).inc()

    def _gauges(self, channel: ChannelStatus) -> None:
        if channel.section not in self._failing:
            self._failing[channel.section] = Gauge(
                f"klash_{channel.section}_failing",
                f"Recipients whose {channel.section} are failing.", registry=self.registry)
        failing = self._failing[channel.section]
        failing.set(sum(1 for r in channel.records.values() if not r.ok))
        if not channel.levels:
            return
        if channel.section not in self._levels:
            self._levels[channel.section] = Gauge(
                f"klash_{channel.section}", f"{channel.section.capitalize()} per mentor, by state: "
                + ", ".join(channel.levels) + ".", ["mentor", "state"], registry=self.registry)
        levels = self._levels[channel.section]
        levels.clear()
        for record in channel.records.values():
            for state in channel.levels:
                levels.labels(mentor=record.mentor, state=state).set(record.count(state))

    def render(self, live: Live, problems: Sequence[Mapping[str, Any]] = ()) -> bytes:
        """The exposition; ``problems`` are /healthz's (``health.judge``) at this moment."""
        for channel in live.channels.values():
            self._gauges(channel)
        self.answers.clear()
        for row in live.attendance or ():
            for answer, count in row.counts().items():
                self.answers.labels(session=row.id, answer=answer).set(count)
        self.healthy.set(0 if problems else 1)
        parts = ["programme", "state", *(c.section for c in live.channels.values())]
        for part in parts:
            self.problems.labels(part=part).set(sum(1 for p in problems if p["part"] == part))
        return redact(generate_latest(self.registry).decode()).encode()
