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

import pytest

from klash_sync.state.lock import LOCK_NAME, StateLock
from tests.fixtures.common import run_cli
from tests.fixtures.invite_helpers import ADDRESSES, header, read, session, timed
from tests.fixtures.processes import Running, spawn_daemon, start_daemon, wait_for
from tests.fixtures.stalling import Stall

Y = datetime.now(UTC).year + 1
SLOW = "120"  # KLASH_REQUEST_TIMEOUT: longer than any bound asserted here


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


@pytest.mark.parametrize("at_data", [False, True], ids=["silent", "stalls-at-DATA"])
def test_stalled_mail_server_does_not_hold_the_stop_and_nothing_is_sent_twice(tmp_path, smtp, at_data):
    state, programme = tmp_path / "state", invited_programme(tmp_path)
    stall = Stall(smtp=at_data)
    try:
        running = start_daemon(tmp_path, programme, KLASH_SMTP_URL=f"smtp://127.0.0.1:{stall.port}",
                               KLASH_INVITE_DELAY="0", KLASH_REQUEST_TIMEOUT=SLOW)
        assert stall.seen.wait(60), "the daemon never reached the mail server:\n" + running.log()
        code, log = ended(running)  # a stall past the bound fails here
    finally:
        stall.close()
    assert code == 0, log
    assert "Traceback" not in log, log
    assert lock_is_free(state)

    again = start_daemon(tmp_path, programme, KLASH_INVITE_DELAY="0", **smtp.env())
    try:
        expected = {(ADDRESSES["milja-kopsi"], "first"), (ADDRESSES["ulla-nord"], "first"),
                    (ADDRESSES["ulla-nord"], "second")}
        wait_for(lambda: len(smtp.handler.messages()) >= 3, 60,
                 "three invitations through the working server")
        env = {"KLASH_PROGRAMME": str(programme), "KLASH_STATE_DIR": str(state)}
        wait_for(lambda: "no invitations to send" in run_cli("invites", env=env, timeout=60).out, 60,
                 "an outbox with nothing left to send")
    finally:
        code, log = ended(again)
    assert code == 0, log
    got = [read(m) for m in smtp.handler.messages()]
    keys = [(i.to, i.uid.split("@")[0], i.sequence) for i in got]
    assert len(keys) == len(set(keys)), f"sent twice: {sorted(keys)}"
    assert {(to, uid) for to, uid, _ in keys} == expected
    assert len(keys) == 3


def test_stalled_caldav_server_does_not_hold_the_stop(tmp_path):
    state = tmp_path / "state"
    stall = Stall()
    path = tmp_path / "programme.toml"
    path.write_text(
        '[programme]\nname = "Testi"\ntimezone = "Europe/Helsinki"\nuid_domain = "klash.test"\n'
        'organiser = "Kuntaliitto"\n\n[[mentors]]\nid = "milja-kopsi"\nname = "Milja"\n'
        f'[mentors.caldav]\nurl = "{stall.url}/calendars/alice/"\nusername = "alice"\n'
        'password_env = "PW_ALICE"\ncalendar = "Klash"\n\n'
        f'[[sessions]]\nid = "vantaa"\ntitle = "Vantaa"\ndate = {Y}-10-08\nmentors = ["milja-kopsi"]\n',
        encoding="utf-8")
    try:
        running = start_daemon(tmp_path, path, KLASH_EMBEDDED_CALDAV="false", KLASH_REQUEST_TIMEOUT=SLOW)
        assert stall.seen.wait(60), "the daemon never reached the CalDAV server:\n" + running.log()
        code, log = ended(running)
    finally:
        stall.close()
    assert code == 0, log
    assert "Traceback" not in log, log
    assert lock_is_free(state)
