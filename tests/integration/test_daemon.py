"""The daemon in-process, stepped on a fake clock, against a real Radicale.

The clock drives the schedule, the debounce and the backoff; the syncs themselves are
real HTTP to a real server, waited for (not timed) with ``settle``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.common import fetch
from tests.fixtures.daemon_rig import (
    SESSIONS,
    base_url,
    edit,
    events,
    programme_for,
    radicale_rig,
    settle,
)
from tests.fixtures.servers import Fault


@pytest.fixture
def rig(tmp_path: Path):
    yield from radicale_rig(tmp_path)


def test_start_syncs_every_calendar(rig):
    daemon, _clock, server, _path = rig
    for user in ("alice", "bob"):
        assert [b for b in events(server, user).values() if "vantaa@klash.test" in b]
    assert all(s.ok for s in daemon.live.calendars.values())
    assert len(daemon.live.calendars) == 2


def test_periodic_sync_on_the_schedule_puts_back_a_deleted_event(rig):
    daemon, clock, server, _path = rig
    href = next(iter(events(server, "alice")))
    deleted = fetch(server.base, "/" + href.split("/", 3)[3], "DELETE", server.auth("alice"))
    assert deleted.status in (200, 204)
    server.recorder.reset()
    clock.advance(299)
    settle(daemon)
    assert server.recorder.count() == 0, "nothing before the interval"
    clock.advance(1)
    settle(daemon)
    assert server.recorder.count(methods={"PUT"}) == 1
    assert any("vantaa@klash.test" in b for b in events(server, "alice").values())




def test_edit_is_debounced_then_applied_to_feed_and_calendars(rig):
    daemon, clock, server, path = rig
    before = daemon.live.snapshot
    edit(daemon, path, programme_for(server.base, SESSIONS.replace("2019-10-08", "2019-10-09")), clock)
    daemon.tick()
    assert daemon.live.snapshot is before, "not applied before the file has been quiet for 1 s"
    clock.advance(1.0)
    settle(daemon)
    assert daemon.live.snapshot is not before
    feed = fetch(base_url(daemon), "/feeds/programme.ics").body
    assert b"DTSTART;VALUE=DATE:20191009" in feed
    assert all("20191009" in b for b in events(server, "bob").values())


def test_bad_edit_is_reported_never_applied_and_fix_is_applied(rig):
    daemon, clock, server, path = rig
    good_feed = fetch(base_url(daemon), "/feeds/programme.ics").body
    server.recorder.reset()
    edit(daemon, path, programme_for(server.base).replace("date = 2019-10-08", "date = 2019-13-08"),
          clock)
    clock.advance(1.0)
    settle(daemon)
    clock.advance(300)  # a periodic sync with the last good programme writes nothing
    settle(daemon)
    assert server.recorder.count(methods={"PUT", "DELETE"}) == 0
    health = fetch(base_url(daemon), "/healthz")
    assert health.status == 503
    body = json.loads(health.body)
    assert "line" in body["programme"]["error"]
    assert str(path) in body["programme"]["error"]
    assert body["programme"]["valid_on_disk"] is False
    assert fetch(base_url(daemon), "/feeds/programme.ics").body == good_feed
    assert "programme.toml" in fetch(base_url(daemon), "/").body.decode()
    # Fixed: applied, and healthy again.
    edit(daemon, path, programme_for(server.base, SESSIONS.replace("Vantaa\"\nmunicipality",
                                                                    "Vantaa 2\"\nmunicipality")), clock)
    clock.advance(1.0)
    settle(daemon)
    assert fetch(base_url(daemon), "/healthz").status == 200
    assert b"SUMMARY:Vantaa 2" in fetch(base_url(daemon), "/feeds/programme.ics").body


def test_failing_calendar_backs_off_alone_and_health_turns_503_only_when_all_fail(rig):
    daemon, clock, server, path = rig
    server.recorder.faults.append(Fault("500", path_prefix="/bob/"))
    edit(daemon, path, programme_for(server.base, SESSIONS.replace("2019-10-08", "2019-10-10")), clock)
    clock.advance(1.0)
    settle(daemon)
    status = {s.mentor: s for s in daemon.live.calendars.values()}
    assert status["milja-kopsi"].ok
    assert not status["ulla-nord"].ok
    assert "500" in status["ulla-nord"].error
    assert daemon.backoff.failures(status["ulla-nord"].calendar) == 1
    assert fetch(base_url(daemon), "/healthz").status == 200, "not yet failing for long"
    # Retries come on the backoff, not on every tick.
    server.recorder.reset()
    clock.advance(2.4)  # below the smallest jittered first delay (2.5 s)
    settle(daemon)
    assert server.recorder.count("/bob/") == 0
    clock.advance(8)
    settle(daemon)
    assert server.recorder.count("/bob/") >= 1
    assert server.recorder.count("/alice/") == 0, "the healthy calendar is not dragged along"
    clock.advance(61)
    settle(daemon)
    # One mentor's server failing for long is that mentor's problem: shown, not a restart reason.
    answer = fetch(base_url(daemon), "/healthz")
    assert answer.status == 200
    warnings = json.loads(answer.body)["warnings"]
    assert [(w["part"], w["mentor"]) for w in warnings] == [("calendars", "ulla-nord")]
    assert "500" in warnings[0]["reason"]
    # Every calendar failing for longer than KLASH_UNHEALTHY_AFTER: the channel is down.
    server.recorder.faults.append(Fault("500", path_prefix="/alice/"))
    edit(daemon, path, programme_for(server.base, SESSIONS.replace("2019-10-08", "2019-10-11")), clock)
    clock.advance(1.0)
    settle(daemon)
    assert fetch(base_url(daemon), "/healthz").status == 200, "alice not yet failing for long"
    clock.advance(130)
    settle(daemon)
    answer = fetch(base_url(daemon), "/healthz")
    assert answer.status == 503
    [problem] = json.loads(answer.body)["problems"]
    assert problem["part"] == "calendars"
    assert problem["reason"].startswith("failing for every recipient for over 60 s: milja-kopsi, ulla-nord")
    assert problem["since"] is not None
    assert "klash_healthy 0.0" in fetch(base_url(daemon), "/metrics").body.decode()
    # The server recovers: the next retry converges.
    server.recorder.faults.clear()
    clock.advance(130)
    settle(daemon)
    assert all(s.ok for s in daemon.live.calendars.values())
    assert all("20191011" in b for b in events(server, "bob").values())
    assert fetch(base_url(daemon), "/healthz").status == 200


def test_healthz_and_metrics_formats(rig):
    daemon, _clock, _server, path = rig
    fetch(base_url(daemon), "/feeds/programme.ics")
    health = fetch(base_url(daemon), "/healthz")
    assert health.status == 200
    assert health.headers["content-type"] == "application/json"
    body = json.loads(health.body)
    assert body["status"] == "ok"
    assert body["programme"]["loaded_at"]
    assert body["programme"]["path"] == str(path)
    assert body["programme"]["error"] is None
    for cal in body["calendars"]:
        assert set(cal) >= {"mentor", "ok", "last_sync", "last_success", "failing_since", "error"}
        assert cal["ok"] is True
        assert cal["last_sync"]
    text = fetch(base_url(daemon), "/metrics").body.decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["klash_calendar_syncs"].samples[0].value >= 2
    assert any(s.labels == {"kind": "create"} for s in families["klash_sync_actions"].samples)
    assert "klash_calendar_sync_seconds" in families
    feed_requests = families["klash_feed_requests"].samples
    assert any(s.labels == {"kind": "programme", "status": "200"} and s.value >= 1 for s in feed_requests)
    assert families["klash_programme_valid"].samples[0].value == 1
