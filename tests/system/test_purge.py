"""`klash-sync purge MENTOR` finds our events on the server, whatever the state directory knows.

A state directory that was lost, or one on another machine, knows no calendar: purge must
still find the mentor's calendar from their settings (as a sync would, but never create
one), remove every event of ours there, touch nothing else, and say truthfully how many
it found and deleted. Ours means both our UID domain and our `X-KLASH-SYNC` marker (every
event we push carries both; the test checks it on each server): an event that has only
one of them is not ours and stays, byte for byte. Real servers (Radicale, Xandikos), the
command line as a process, and the daemon taking the command over.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import icalendar
import pytest

from tests.fixtures.caldav_world import ENV, SESSIONS, World, programme
from tests.fixtures.common import ROOT, fetch
from tests.fixtures.processes import start_daemon, wait_for
from tests.fixtures.servers import Fault, foreign_event, start_radicale

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HANDED_OVER = "klash-sync run holds the state directory; handed over to it, waiting for the result"

# Two events that look like ours in one respect only: neither is ours, so purge keeps both.
SAME_DOMAIN = foreign_event("oma-muistiinpano@klash.test", "Oma muistiinpano")  # our domain, no marker
MARKED_ELSEWHERE = foreign_event("vantaa@toinen-ohjelma.example", "Toisen ohjelman tapaaminen").replace(
    b"END:VEVENT", b"X-KLASH-SYNC:vantaa\r\nEND:VEVENT")  # the marker, another programme's domain


def cli(state: Path, programme_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    env.update(ENV, KLASH_STATE_DIR=str(state), KLASH_PROGRAMME=str(programme_path),
               KLASH_EMBEDDED_CALDAV="false", KLASH_REQUEST_TIMEOUT="3", KLASH_SYNC_WORKERS="1")
    return subprocess.run([sys.executable, "-m", "klash_sync", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def put(world: World, user: str, name: str, body: bytes) -> str:
    """A resource the mentor (or another program) put in the same calendar; its path."""
    url = str(world.calendar(user).url).rstrip("/") + "/" + name
    path = "/" + url.split("/", 3)[3]
    done = fetch(world.server.base, path, "PUT", {**world.server.auth(user),
                                                  "Content-Type": "text/calendar"}, body)
    assert done.status in (201, 204), done.status
    return path


def others(world: World, user: str) -> dict[str, bytes]:
    """Every resource of the calendar whose UID is not one we push, as the server serves it."""
    pushed = {f"{sid}@klash.test" for sid in SESSIONS}
    found = {}
    for event in world.calendar(user).events():
        path = "/" + str(event.url).split("/", 3)[3]
        body = world.get(user, path).body
        if str(icalendar.Calendar.from_ical(body).walk("VEVENT")[0]["UID"]) not in pushed:
            found[path] = body
    return found


def test_purge_with_a_fresh_state_directory_removes_ours_and_nothing_else(world, tmp_path):
    path = tmp_path / "programme.toml"
    path.write_text(programme(world.server, SESSIONS))
    pushed = cli(tmp_path / "lost", path, "sync")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert set(world.events("bob")) == {"joensuu", "vantaa", "yhteinen"}
    assert all("X-KLASH-SYNC" in e for e in world.events("bob").values())  # what marks ours
    own = world.put_foreign("bob")[0]
    put(world, "bob", "muistiinpano.ics", SAME_DOMAIN)
    put(world, "bob", "toinen.ics", MARKED_ELSEWHERE)
    kept = others(world, "bob")
    assert len(kept) == 3
    assert own in kept
    milja = {sid: e.to_ical() for sid, e in world.events("alice").items()}

    fresh = tmp_path / "fresh"  # the state directory is lost: a new one knows nothing
    world.server.recorder.reset()
    purged = cli(fresh, path, "purge", "ulla-nord")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert re.search(r"^ok +ulla-nord +3 events of ours found, 3 deleted +\(\d+ requests",
                     purged.stdout, re.M), purged.stdout
    assert "Traceback" not in purged.stderr
    assert others(world, "bob") == kept  # the mentor's own, and both lookalikes, byte for byte
    assert len(list(world.calendar("bob").events())) == 3
    assert {sid: e.to_ical() for sid, e in world.events("alice").items()} == milja  # another mentor
    assert world.server.recorder.methods()["DELETE"] == 3
    assert world.server.recorder.methods()["PUT"] == world.server.recorder.methods()["MKCALENDAR"] == 0

    again = cli(fresh, path, "purge", "ulla-nord")  # said truthfully: nothing of ours is left
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(r"^ok +ulla-nord +no event of ours in the calendar, nothing deleted ",
                     again.stdout, re.M), again.stdout

    # A calendar that is not there holds nothing of ours; purge looks for it and makes none.
    elsewhere = tmp_path / "elsewhere.toml"
    head, ulla = path.read_text().split('id = "ulla-nord"')
    elsewhere.write_text(head + 'id = "ulla-nord"' + re.sub(r'calendar = "[^"]*"',
                                                            'calendar = "Ei ole"', ulla, count=1))
    world.server.recorder.reset()
    missing = cli(tmp_path / "fresh-2", elsewhere, "purge", "ulla-nord")
    assert missing.returncode == 0, missing.stdout + missing.stderr
    assert re.search(r"^ok +ulla-nord +no event of ours: there is no calendar 'Ei ole' on 127\.0\.0\.1:\d+ ",
                     missing.stdout, re.M), missing.stdout
    assert set(world.server.recorder.methods()) <= {"PROPFIND"}
    assert others(world, "bob") == kept

    # A server that cannot be reached: exit 1 and why, never "ok".
    world.server.stop()
    down = cli(tmp_path / "fresh-3", path, "purge", "milja-kopsi")
    assert down.returncode == 1, down.stdout + down.stderr
    assert re.search(r"^FAILED +milja-kopsi +\S", down.stdout, re.M), down.stdout
    assert "ok" not in down.stdout


def test_purge_handed_to_a_daemon_that_has_not_found_the_calendar_yet(tmp_path):
    """The same function inside `klash-sync run`: its store does not know the calendar either."""
    server = start_radicale(tmp_path / "radicale")
    daemon = None
    try:
        world = World(server, None, None)  # type: ignore[arg-type]  # for reading calendars back
        path = tmp_path / "programme.toml"
        path.write_text(programme(server, SESSIONS))
        pushed = cli(tmp_path / "other-machine", path, "sync")
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        own = world.put_foreign("bob")[0]
        put(world, "bob", "muistiinpano.ics", SAME_DOMAIN)
        kept = others(world, "bob")
        assert own in kept
        assert len(kept) == 2

        # The daemon starts on a new state directory while the server fails every request, so
        # it has found no calendar. After its third failure the next try is 10 s or more away
        # (KLASH's backoff: 5 s, doubled, times [0.5, 1]): the purge comes before it.
        server.recorder.faults.append(Fault("500"))
        server.recorder.reset()
        daemon = start_daemon(tmp_path, path, KLASH_EMBEDDED_CALDAV="false", KLASH_SYNC_INTERVAL="3600")
        wait_for(lambda: server.recorder.count("/bob/") >= 3, 60, "three failed tries of Ulla's calendar")
        server.recorder.faults.clear()
        purged = cli(tmp_path / "state", path, "purge", "ulla-nord")
        assert purged.returncode == 0, purged.stdout + purged.stderr
        assert HANDED_OVER in purged.stderr
        assert re.search(r"^ok +ulla-nord +3 events of ours found, 3 deleted ", purged.stdout,
                         re.M), purged.stdout
        assert others(world, "bob") == kept
        assert len(list(world.calendar("bob").events())) == 2
    finally:
        if daemon is not None:
            daemon.proc.send_signal(signal.SIGTERM)
            assert daemon.proc.wait(timeout=20) == 0, daemon.log()
            assert "Traceback" not in daemon.log(), daemon.log()
        server.stop()
