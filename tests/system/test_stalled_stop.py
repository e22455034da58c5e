"""`klash-sync run` stops when told and reloads when told, whatever its servers do.

* Signals are caught before anything answers: from the moment the lock file names the
  process, a SIGHUP (what `systemctl reload` or `docker kill -s HUP` sends right after a
  start) reloads and never kills it, and a SIGTERM stops it cleanly with exit code 0.
* A mail server that accepts and then stalls (silent from the start, or silent after the
  whole message instead of its 250), or a CalDAV server that accepts and never answers,
  does not keep a stopped daemon alive: SIGTERM ends it within the default
  KLASH_STOP_TIMEOUT of 10 s, exit code 0, and the state directory's lock is free as soon
  as the process is gone. The server's timeout (KLASH_REQUEST_TIMEOUT) is set far longer,
  so only the stop's own bound can end the wait.
* The invitation abandoned mid-conversation is sent at the next start, to a real SMTP
  server, and every invitation reaches its mailbox exactly once.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from klash_sync.state.lock import LOCK_NAME, StateLock
from tests.fixtures.invite_helpers import header, session, timed
from tests.fixtures.processes import Running, spawn_daemon, wait_for

Y = datetime.now(UTC).year + 1


def invited_programme(tmp_path: Path) -> Path:
    path = tmp_path / "programme.toml"
    path.write_text(header()
                    + session("first", timed(f"{Y}-07-02", "10:00", "12:00"), ["milja-kopsi", "ulla-nord"])
                    + session("second", timed(f"{Y}-01-15", "10:00", "11:00"), ["ulla-nord"]),
                    encoding="utf-8")
    return path


def named_in_lock(running: Running, state: Path) -> bool:
    """The lock file names this process as its holder (what `run` writes first)."""
    try:
        return json.loads((state / LOCK_NAME).read_text() or "{}").get("pid") == running.proc.pid
    except (OSError, ValueError):
        return False


def healthz(url: str) -> int | None:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None


def lock_is_free(state: Path) -> bool:
    """Another writer can take the state directory now (and gives it back)."""
    StateLock(state).acquire("test", datetime.now(UTC)).release()
    return True


def ended(running: Running) -> tuple[int, str]:
    """SIGTERM, then wait at most the default KLASH_STOP_TIMEOUT (10 s) for the exit."""
    running.proc.send_signal(signal.SIGTERM)
    try:
        code = running.proc.wait(timeout=10)
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()
    time.sleep(0.2)  # let the pump read the last lines
    return code, running.log()


def test_sighup_from_the_lock_until_healthz_answers_reloads_and_never_kills(tmp_path):
    state = tmp_path / "state"
    running = spawn_daemon(tmp_path, invited_programme(tmp_path), KLASH_EMBEDDED_CALDAV="false")
    try:
        wait_for(lambda: named_in_lock(running, state) or running.proc.poll() is not None, 60,
                 "the lock file naming the daemon")
        sent, answered = 0, None
        deadline = time.monotonic() + 60
        while answered is None and running.proc.poll() is None and time.monotonic() < deadline:
            os.kill(running.proc.pid, signal.SIGHUP)
            sent += 1
            time.sleep(0.01)
            if running.url:
                answered = healthz(running.url)
        assert running.proc.poll() is None, (f"killed by one of {sent} SIGHUPs "
                                             f"(exit {running.proc.returncode}):\n{running.log()}")
        assert answered is not None, running.log()
    finally:
        code, log = ended(running)
    assert code == 0, log
    assert "Traceback" not in log, log


def test_sigterm_the_moment_the_lock_names_the_holder_stops_cleanly(tmp_path):
    state = tmp_path / "state"
    running = spawn_daemon(tmp_path, invited_programme(tmp_path), KLASH_EMBEDDED_CALDAV="false")
    try:
        wait_for(lambda: named_in_lock(running, state) or running.proc.poll() is not None, 60,
                 "the lock file naming the daemon")
    finally:
        code, log = ended(running)
    assert code == 0, log
    assert "Traceback" not in log, log
    assert lock_is_free(state)
