"""`klash-sync run` as a real process on a free port, against a real Radicale.

What an operator relies on: an edit reaches the feed and the calendars within 5 s, a
broken edit is reported and never applied, a fix is applied, SIGHUP reloads, and
SIGTERM stops cleanly within 10 s.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import ROOT, fetch
from .servers import start_radicale
from .test_caldav_sync import ENV
from .test_daemon import SESSIONS, events, programme_for


class Running:
    def __init__(self, proc: subprocess.Popen, url: str, lines: list[str]) -> None:
        self.proc, self.url, self.lines = proc, url, lines

    def log(self) -> str:
        return "".join(self.lines)


def start_daemon(tmp_path: Path, programme: Path, **extra: str) -> Running:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    env.update(ENV, KLASH_PROGRAMME=str(programme), KLASH_STATE_DIR=str(tmp_path / "state"),
               KLASH_PORT="0", KLASH_REQUEST_TIMEOUT="3", **extra)
    proc = subprocess.Popen([sys.executable, "-m", "klash_sync", "run"], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def pump() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            m = re.search(r"listening on (http://\S+)", line)
            if m and not url:
                url.append(m.group(1))
                found.set()

    threading.Thread(target=pump, daemon=True).start()
    assert found.wait(30), "the daemon did not start:\n" + "".join(lines)
    return Running(proc, url[0], lines)


def wait_for(predicate, limit: float, what: str) -> float:
    """Poll until true; return the seconds it took. Fails after ``limit`` seconds."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > limit:
            pytest.fail(f"{what} did not happen within {limit} s")
        time.sleep(0.05)
    return time.monotonic() - start


def stop(running: Running) -> tuple[int, float]:
    start = time.monotonic()
    running.proc.send_signal(signal.SIGTERM)
    code = running.proc.wait(timeout=20)
    return code, time.monotonic() - start


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
        from .servers import Fault
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
