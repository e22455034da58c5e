"""`klash-sync run` as a real process on a free port, against a real Radicale.

What an operator relies on: an edit reaches the feed and the calendars within 5 s, a
broken edit is reported and never applied, a fix is applied, SIGHUP reloads, and
SIGTERM stops cleanly within 10 s.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.fixtures.common import ROOT, fetch
from tests.fixtures.daemon_rig import SESSIONS, events, programme_for
from tests.fixtures.processes import start_daemon, stop, wait_for
from tests.fixtures.servers import start_radicale


@pytest.fixture
def radicale(tmp_path):
    server = start_radicale(tmp_path / "radicale")
    yield server
    server.stop()


def test_edits_reach_feed_and_calendars_broken_edits_never_applied(tmp_path, radicale):
    path = tmp_path / "programme.toml"
    path.write_text(programme_for(radicale.base))
    d = start_daemon(tmp_path, path)
    try:
        wait_for(lambda: len(events(radicale, "bob")) == 1, 30, "the first sync")

        def feed() -> bytes:
            return fetch(d.url, "/feeds/programme.ics").body

        # A reschedule reaches the feed and the calendar within 5 s of saving.
        path.write_text(programme_for(radicale.base, SESSIONS.replace("2019-10-08", "2019-10-11")))
        wait_for(lambda: b"DTSTART;VALUE=DATE:20191011" in feed(), 5, "the reschedule in the feed")
        wait_for(lambda: all("20191011" in b for b in events(radicale, "bob").values()), 5,
                 "the reschedule in the calendar")

        # A broken file: reported, old feed still served, calendars untouched.
        good = feed()
        radicale.recorder.reset()
        path.write_text(programme_for(radicale.base).replace('title = "Vantaa"', 'title = Vantaa'))
        wait_for(lambda: fetch(d.url, "/healthz").status == 503, 10, "the error on /healthz")
        error = json.loads(fetch(d.url, "/healthz").body)["programme"]["error"]
        assert "line" in error
        assert "column" in error
        assert "programme.toml" in error
        assert "programme not applied" in d.log()
        assert feed() == good
        time.sleep(1.5)  # a wrongly applied edit would sync within this time
        assert radicale.recorder.count(methods={"PUT", "DELETE"}) == 0

        # Fixed: applied.
        path.write_text(programme_for(radicale.base, SESSIONS.replace('"Vantaa"\nmunicipality',
                                                                      '"Vantaa korjattu"\nmunicipality')))
        wait_for(lambda: b"SUMMARY:Vantaa korjattu" in feed(), 5, "the fix")
        wait_for(lambda: fetch(d.url, "/healthz").status == 200, 5, "healthy again")
    finally:
        code, seconds = stop(d)
    assert code == 0, d.log()
    assert seconds < 10
    assert "Traceback" not in d.log()


def test_sighup_reloads_and_sigterm_stops_within_10_s(tmp_path, radicale):
    path = tmp_path / "programme.toml"
    path.write_text(programme_for(radicale.base))
    # A long debounce: the edit alone is not applied; SIGHUP applies it at once.
    d = start_daemon(tmp_path, path, KLASH_DEBOUNCE="3600")
    try:
        wait_for(lambda: len(events(radicale, "alice")) == 1, 30, "the first sync")
        path.write_text(programme_for(radicale.base, SESSIONS.replace('"Vantaa"\nmunicipality',
                                                                      '"Vantaa HUP"\nmunicipality')))
        time.sleep(2.5)  # past the watcher and the 2 s stat check
        assert b"Vantaa HUP" not in fetch(d.url, "/feeds/programme.ics").body
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: b"Vantaa HUP" in fetch(d.url, "/feeds/programme.ics").body, 5, "SIGHUP reload")
        wait_for(lambda: all("Vantaa HUP" in b for b in events(radicale, "alice").values()), 5,
                 "the calendar after SIGHUP")
        # SIGTERM in the middle of a sync against a server that hangs: still out within 10 s.
        from tests.fixtures.servers import Fault
        radicale.recorder.faults.append(Fault("hang"))
        radicale.recorder.reset()
        path.write_text(programme_for(radicale.base, SESSIONS.replace("2019-10-08", "2019-10-12")))
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: radicale.recorder.count() > 0, 5, "a sync to reach the hanging server")
    finally:
        code, seconds = stop(d)
    assert code == 0, d.log()
    assert seconds < 10, seconds
    assert "stopped" in d.log()


def test_fresh_start_with_defaults_serves_and_syncs_the_embedded_server(tmp_path):
    """The README's main command: shipped programme, no settings, embedded CalDAV."""
    d = start_daemon(tmp_path, ROOT / "config" / "programme.toml")
    try:
        wait_for(lambda: json.loads(fetch(d.url, "/healthz").body)["calendars"].__len__() == 8
                 and all(c["ok"] for c in json.loads(fetch(d.url, "/healthz").body)["calendars"]),
                 30, "all eight embedded calendars in sync")
        assert fetch(d.url, "/feeds/programme.ics").status == 200
        # The embedded server never answers without credentials.
        assert fetch(d.url, "/dav/milja-kopsi/klash/").status == 401
    finally:
        code, _ = stop(d)
    assert code == 0
