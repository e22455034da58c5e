"""Nothing a mentor's calendar has seen goes backwards, whatever happens to our state.

Real Radicale and Xandikos servers, the CLI and the daemon as processes. Each test is
one thing an operator does at night: loses the state directory, restores an old
backup, starts a second copy, moves the service to another port, mounts the volume
with the wrong owner, changes a mentor's calendar URL, runs with a wrong clock.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import icalendar
import pytest

from klash_sync.programme.load import parse
from klash_sync.service.publish import publish
from klash_sync.state.store import Store
from tests.fixtures.caldav_world import ENV, SESSIONS, programme
from tests.fixtures.common import ROOT, fetch
from tests.fixtures.processes import start_daemon, wait_for
from tests.fixtures.servers import start_radicale


def moved(text: str, day: int) -> str:
    """The programme with the joint session (both mentors) on another day of October."""
    return text.replace("date = 2019-10-15", f"date = 2019-10-{day:02d}", 1)


def server_sequences(world) -> dict[str, list[int]]:
    """Every copy of every event of ours on the server: session id -> SEQUENCEs (one per copy)."""
    found: dict[str, list[int]] = {}
    for user in ("alice", "bob"):
        for event in world.events(user).values():
            found.setdefault(str(event["X-KLASH-SYNC"]), []).append(int(event["SEQUENCE"]))
    return found


def feed_sequences(world, text: str) -> dict[str, int]:
    snapshot = publish(parse(text.encode(), "p.toml"), world.store, now=world.now,
                       base_url="https://klash.test")
    cal = icalendar.Calendar.from_ical(snapshot.feeds["/feeds/programme.ics"].body)
    return {str(e["X-KLASH-SYNC"]): int(e["SEQUENCE"]) for e in cal.walk("VEVENT")}


def uid_counts(world) -> dict[str, int]:
    counts: dict[str, int] = {}
    for user in ("alice", "bob"):
        for obj in world.calendar(user).events():
            uid = str(icalendar.Calendar.from_ical(obj.data).walk("VEVENT")[0]["UID"])
            counts[f"{user}:{uid}"] = counts.get(f"{user}:{uid}", 0) + 1
    return counts


def copy_store(store: Store, to: Path) -> None:
    to.parent.mkdir(parents=True, exist_ok=True)
    target = sqlite3.connect(to)
    with store._lock:
        store._db.backup(target)
    target.close()


@pytest.mark.parametrize("loss", ["deleted", "old-backup"])
@pytest.mark.parametrize("then", ["no-change", "reschedule"])
def test_sequence_never_goes_below_what_clients_saw(world, tmp_path, loss, then):
    base = programme(world.server, SESSIONS)
    assert world.sync(base).ok
    foreign_path, foreign_bytes, _ = world.put_foreign("alice")
    backup = tmp_path / "backup" / "state.sqlite3"
    for day in (16, 17, 18):  # three reschedules: SEQUENCE first + 3
        text = moved(base, day)
        assert world.sync(text).ok
        if day == 16:
            copy_store(world.store, backup)
    seen = server_sequences(world)
    fed = feed_sequences(world, text)
    assert len(set(seen["yhteinen"])) == 1
    assert fed["yhteinen"] == seen["yhteinen"][0]

    world.store.close()
    if loss == "deleted":
        world.store = Store(tmp_path / "lost" / "state.sqlite3")
    else:
        world.store = Store(backup)
    if then == "reschedule":
        text = moved(base, 19)
    report = world.sync(text)
    assert report.ok, [r.error for r in report.results]

    after = server_sequences(world)
    fed_after = feed_sequences(world, text)
    for sid, before in seen.items():
        for seq in after[sid]:
            assert seq >= max(before), (sid, seq, before)
        assert fed_after[sid] >= fed[sid], sid
        assert fed_after[sid] >= max(after[sid]), "a feed below a server copy"
    if then == "reschedule":
        assert min(after["yhteinen"]) > max(seen["yhteinen"])
        assert fed_after["yhteinen"] > fed["yhteinen"]
        assert str(world.events("bob")["yhteinen"]["DTSTART"].dt) == "2019-10-19"
    assert all(n == 1 for n in uid_counts(world).values()), uid_counts(world)
    assert world.get("alice", foreign_path).body == foreign_bytes
    # And the next sync is free: the raised numbers are now ours.
    world.server.recorder.reset()
    assert world.sync(text).ok
    assert world.server.recorder.count(methods={"PUT", "DELETE"}) == 0


def test_port_and_public_url_are_not_changes_of_a_session(world):
    text = programme(world.server, SESSIONS)
    parsed = parse(text.encode(), "p.toml")
    first = publish(parsed, world.store, now=world.now, base_url=None)
    assert world.sync(text).ok
    changes = len(world.store.recent_changes(1000))
    seqs = server_sequences(world)
    world.server.recorder.reset()
    for base in ("https://kunnat.example.fi/klash", "http://127.0.0.1:9090", None):
        snap = publish(parsed, world.store, now=world.now + timedelta(hours=1), base_url=base)
        assert snap.revisions == first.revisions, base
        assert snap.happened == {}
        if base:
            assert f"{base}/#joensuu".encode() in snap.feeds["/feeds/programme.ics"].body.replace(
                b"\r\n ", b"")
    assert len(world.store.recent_changes(1000)) == changes
    assert world.server.recorder.count(methods={"PUT", "DELETE"}) == 0
    assert server_sequences(world) == seqs


# ---------------------------------------------------------------- processes


def cli(tmp_path: Path, *args: str, env: dict | None = None, prefix: tuple = (),
        timeout: float = 120) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    full.update(ENV, KLASH_STATE_DIR=str(tmp_path / "state"), KLASH_REQUEST_TIMEOUT="3")
    full.update(env or {})
    return subprocess.run([*prefix, sys.executable, "-m", "klash_sync", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=timeout, check=False)


def digest(path: Path) -> str:
    return Store.readonly(path).content_digest()


def test_one_writer_and_read_only_commands_beside_the_daemon(tmp_path):
    server = start_radicale(tmp_path / "radicale")
    try:
        path = tmp_path / "programme.toml"
        path.write_text(programme(server, SESSIONS))
        env = {"KLASH_PROGRAMME": str(path), "KLASH_EMBEDDED_CALDAV": "false"}
        daemon = start_daemon(tmp_path, path, KLASH_EMBEDDED_CALDAV="false",
                              KLASH_SYNC_INTERVAL="3600")
        try:
            wait_for(lambda: json.loads(fetch(daemon.url, "/healthz").body)["calendars"]
                     and all(c["ok"] for c in json.loads(fetch(daemon.url, "/healthz").body)["calendars"]),
                     30, "first sync")
            db = tmp_path / "state" / "state.sqlite3"
            settled: list[str] = []

            def quiet() -> bool:  # the daemon has finished its start-up writes
                settled.append(digest(db))
                time.sleep(0.5)
                return len(settled) > 1 and settled[-1] == settled[-2]

            wait_for(quiet, 20, "a quiet store")
            before = digest(db)
            server.recorder.reset()
            # (`sync` beside the daemon used to stop here too; it is handed over to the daemon
            # now, like every command that writes: tests/system/test_operator_commands.py)
            for command in ("run",):
                second = cli(tmp_path, command, env=env)
                assert second.returncode == 2, second.stderr
                line = second.stderr.strip().splitlines()
                assert len(line) == 1, second.stderr
                assert f"another klash-sync (pid {daemon.proc.pid}, started " in line[0]
                assert str(tmp_path / "state") in line[0]
            for args, extra in ((("plan",), {}), (("validate",), {}), (("export",), {}),
                                (("export", "--mentor", "ulla-nord"), {"KLASH_PORT": "9999"}),
                                (("export",), {"KLASH_PUBLIC_URL": "https://elsewhere.example"}),
                                (("feeds",), {}), (("invites",), {})):
                done = cli(tmp_path, *args, env={**env, **extra})
                assert done.returncode == 0, (args, done.stderr)
            assert "nothing to do" in cli(tmp_path, "plan", env=env).stdout
            assert digest(db) == before
            assert server.recorder.count(methods={"PUT", "DELETE", "MKCALENDAR", "PROPPATCH"}) == 0
            # An operator action that needs the writer is handed over to the daemon.
            purged = cli(tmp_path, "purge", "ulla-nord", env=env)
            assert purged.returncode == 0, purged.stdout + purged.stderr
            assert "ulla-nord" in purged.stdout
            assert "3 events of ours found, 3 deleted" in purged.stdout  # Ulla's three sessions
            assert server.recorder.count(methods={"DELETE"}) == 3
        finally:
            daemon.proc.send_signal(signal.SIGTERM)
            daemon.proc.wait(timeout=15)
        # With the daemon gone, the lock is free again (even a stale lock file blocks nobody).
        assert (tmp_path / "state" / "klash-sync.lock").exists()
        assert cli(tmp_path, "sync", env=env).returncode == 0
    finally:
        server.stop()


def _files(state: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(state.iterdir()) if p.name.startswith("state.sqlite3")}


def _store_with_wal(state: Path) -> Store:
    """A real store, held open by this process so that its WAL exists."""
    store = Store(state / "state.sqlite3")
    store.set("marker", "kept")
    store.set("second", "in the WAL")
    return store


_LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA locking_mode=EXCLUSIVE")
db.execute("BEGIN EXCLUSIVE")
db.execute("INSERT OR REPLACE INTO kv VALUES ('locked', 'yes')")
print("held", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("problem", ["read-only", "other-owner", "locked"])
def test_unusable_state_directory_stops_with_one_line_and_touches_nothing(tmp_path, problem):
    if shutil.which("unshare") is None:
        pytest.fail("util-linux unshare is needed (installed with Debian's base system)")
    state = tmp_path / "state"
    kept = _store_with_wal(state)
    locker = None
    prefix: tuple = ()
    try:
        if problem == "locked":
            kept.close()  # another program takes the database for itself, and writes to it
            locker = subprocess.Popen(
                [sys.executable, "-c", _LOCKER, str(state / "state.sqlite3")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert locker.stdout.readline().strip() == "held"
        else:
            # As root, permissions bind only without CAP_DAC_OVERRIDE: a user namespace
            # drops it, as a container's non-root user would be.
            prefix = ("unshare", "--user")
            if problem == "read-only":
                state.chmod(0o555)
            else:
                os.chown(state, 65534, 65534)
                state.chmod(0o700)
        files = _files(state)
        assert any(name.endswith("-wal") for name in files)
        for command in (("sync",), ("run", "--port", "0")):
            done = cli(tmp_path, *command, prefix=prefix, timeout=60)
            assert done.returncode == 2, done.stdout + done.stderr
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1, done.stderr
            assert "Traceback" not in done.stderr
            assert str(state) in lines[0]
            expected = {"read-only": "not writable", "other-owner": "not writable",
                        "locked": "locked by another process"}[problem]
            assert expected in lines[0], lines[0]
            assert _files(state) == files  # the database and its WAL, byte for byte
    finally:
        state.chmod(0o700)
        os.chown(state, os.getuid(), os.getgid())
        if locker is not None:
            locker.stdin.close()
            locker.wait(timeout=10)
        kept.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_store_is_moved_aside_with_its_wal_and_the_start_continues(tmp_path, damage):
    state = tmp_path / "state"
    db = state / "state.sqlite3"
    holder = _store_with_wal(state)
    wal = Path(f"{db}-wal").read_bytes()
    holder.close()
    if damage == "garbage":
        db.write_bytes(b"this is not a database, it is a shopping list\n" * 200)
        Path(f"{db}-wal").write_bytes(wal)
    else:
        # A store cut in half (a copy made while it grew), with its own WAL beside it.
        big = Store(tmp_path / "big" / "state.sqlite3")
        for i in range(400):
            big.set(f"k{i}", "x" * 500)
        big._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        big.set("last", "in the WAL")
        data = (tmp_path / "big" / "state.sqlite3").read_bytes()
        db.write_bytes(data[: len(data) // 2])
        Path(f"{db}-wal").write_bytes(Path(f"{tmp_path / 'big' / 'state.sqlite3'}-wal").read_bytes())
        big.close()
    damaged, damaged_wal = db.read_bytes(), Path(f"{db}-wal").read_bytes()
    done = cli(tmp_path, "sync")
    assert done.returncode == 0, done.stdout + done.stderr
    assert Path(f"{db}.bad-1").read_bytes() == damaged
    assert Path(f"{db}.bad-1-wal").read_bytes() == damaged_wal
    assert "kept it as" in done.stderr
    assert "Traceback" not in done.stderr
    assert Store.readonly(db).get("marker") is None  # a new store, in use


def test_removed_state_directory_is_noticed_by_the_daemon(tmp_path):
    path = tmp_path / "programme.toml"
    shutil.copy(ROOT / "config" / "programme.toml", path)
    daemon = start_daemon(tmp_path, path, KLASH_SYNC_INTERVAL="3600")
    try:
        wait_for(lambda: fetch(daemon.url, "/healthz").status == 200, 30, "healthy")
        # The directory disappears from under it (moved away whole: a removal that the daemon's
        # own writes cannot race with, as rmtree's walk can).
        (tmp_path / "state").rename(tmp_path / "state-gone")
        wait_for(lambda: fetch(daemon.url, "/healthz").status == 503, 20, "unhealthy")
        health = json.loads(fetch(daemon.url, "/healthz").body)
        assert any(p["part"] == "state" and "was removed while klash-sync was running" in p["reason"]
                   for p in health["problems"])
        assert "was removed while klash-sync was running" in daemon.log()
        assert not (tmp_path / "state" / "state.sqlite3").exists()
    finally:
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.proc.wait(timeout=15)


def test_same_calendar_by_root_principal_and_collection_url(world):
    text = programme(world.server, SESSIONS)
    assert world.sync(text).ok
    record = next(r for r in world.store.calendars().values() if r.mentor == "milja-kopsi")
    collection = record.url
    hrefs = sorted(str(e.url) for e in world.calendar("alice").events())
    principal = world.server.calendar_url("alice")
    for url in (world.server.base + "/", principal, collection):
        changed = text.replace(f'url = "{principal}"', f'url = "{url}"', 1)  # Milja's block is first
        world.server.recorder.reset()
        report = world.sync(changed)
        assert report.ok, [r.error for r in report.results]
        assert world.server.recorder.count(methods={"PUT", "DELETE", "MKCALENDAR"}) == 0, url
        assert sorted(str(e.url) for e in world.calendar("alice").events()) == hrefs
        keys = [r.key for r in world.store.calendars().values() if r.mentor == "milja-kopsi"]
        assert len(keys) == 1  # one calendar, known by its current description


def test_clock_one_day_back_moves_nothing_backwards(tmp_path):
    if shutil.which("faketime") is None:
        pytest.fail("Debian's faketime is needed (.ci/run installs it)")
    path = tmp_path / "programme.toml"
    shutil.copy(ROOT / "config" / "programme.toml", path)
    env = {"KLASH_PROGRAMME": str(path)}

    def served(prefix: tuple = ()) -> tuple[str, bytes]:
        full = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
        full.update(KLASH_STATE_DIR=str(tmp_path / "state"), KLASH_PORT="0", **env)
        # Its own process group: faketime runs `serve` as its child, and both must stop.
        proc = subprocess.Popen([*prefix, sys.executable, "-m", "klash_sync", "serve"], cwd=ROOT,
                                env=full, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            import re

            url = None
            deadline = time.monotonic() + 30
            while url is None and time.monotonic() < deadline:
                m = re.search(r"serving feeds on (http://\S+)", proc.stderr.readline())
                url = m.group(1) if m else None
            assert url, "serve did not start"
            r = fetch(url, "/feeds/programme.ics")
            return r.headers["last-modified"], r.body
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
            for _ in range(150):  # the group's last member (serve under faketime) is gone
                try:
                    os.killpg(proc.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)

    from email.utils import parsedate_to_datetime

    first, _ = served()
    path.write_text(path.read_text().replace("date = 2019-10-08", "date = 2019-10-09"))
    second, body = served(("faketime", "-f", "-1d"))
    assert parsedate_to_datetime(second) > parsedate_to_datetime(first), (first, second)
    for event in icalendar.Calendar.from_ical(body).walk("VEVENT"):
        assert event["LAST-MODIFIED"].dt >= event["CREATED"].dt
        assert event["DTSTAMP"].dt >= event["CREATED"].dt


def copies_on(server) -> dict[str, list[int]]:
    """user:uid -> the SEQUENCE of each copy of that event on the server."""
    import caldav

    from tests.fixtures.servers import PASSWORDS

    found: dict[str, list[int]] = {}
    for user in ("alice", "bob"):
        with caldav.DAVClient(url=server.calendar_url(user), username=user,
                              password=PASSWORDS[user]) as client:
            for calendar in client.principal().calendars():
                for obj in calendar.events():
                    event = icalendar.Calendar.from_ical(obj.data).walk("VEVENT")[0]
                    if "X-KLASH-SYNC" in event:
                        found.setdefault(f"{user}:{event['UID']}", []).append(int(event["SEQUENCE"]))
    return found


def test_kill_9_at_random_moments_leaves_nothing_lower_lost_or_doubled(tmp_path):
    server = start_radicale(tmp_path / "radicale")
    rng = random.Random(20261130)
    try:
        path = tmp_path / "programme.toml"
        text = programme(server, SESSIONS)
        path.write_text(text)
        env = {"KLASH_PROGRAMME": str(path), "KLASH_EMBEDDED_CALDAV": "false", "KLASH_SYNC_WORKERS": "1"}
        full = {**{k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}, **ENV, **env,
                "KLASH_STATE_DIR": str(tmp_path / "state"), "KLASH_REQUEST_TIMEOUT": "3"}
        assert cli(tmp_path, "sync", env=env).returncode == 0
        highest: dict[str, int] = {}

        def observe() -> dict[str, list[int]]:
            copies = copies_on(server)
            for key, seqs in copies.items():
                assert min(seqs) >= highest.get(key, 0), (key, seqs, highest.get(key))
                highest[key] = max(seqs)
            return copies

        observe()
        backup = tmp_path / "backup.sqlite3"
        for round_ in range(8):
            path.write_text(text.replace("date = 2019-09-24", f"date = 2019-10-{round_ + 1:02d}", 1))
            proc = subprocess.Popen([sys.executable, "-m", "klash_sync", "sync"], cwd=ROOT, env=full,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.2, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            observe()
            if round_ == 2:
                with sqlite3.connect(tmp_path / "state" / "state.sqlite3") as src, \
                        sqlite3.connect(backup) as dst:
                    src.backup(dst)
            if round_ == 5:  # the store is lost, and an old backup is put back
                for f in (tmp_path / "state").glob("state.sqlite3*"):
                    f.unlink()
                shutil.copy(backup, tmp_path / "state" / "state.sqlite3")
        done = cli(tmp_path, "sync", env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        copies = observe()
        assert all(len(seqs) == 1 for seqs in copies.values()), copies  # no duplicates
        assert {k.split(":")[0] for k in copies} == {"alice", "bob"}
        assert len(copies) == 6  # nothing lost: 3 events in each calendar
        assert cli(tmp_path, "plan", env=env).stdout.count("nothing to do") == 2
    finally:
        server.stop()


def test_mass_delete_confirmation_is_handed_to_the_running_daemon(tmp_path):
    server = start_radicale(tmp_path / "radicale")
    try:
        sessions = {**SESSIONS, "extra": 'title = "Extra"\ndate = 2019-10-20\nmentors = ["milja-kopsi"]'}
        path = tmp_path / "programme.toml"
        path.write_text(programme(server, sessions))
        env = {"KLASH_PROGRAMME": str(path), "KLASH_EMBEDDED_CALDAV": "false"}
        daemon = start_daemon(tmp_path, path, KLASH_EMBEDDED_CALDAV="false", KLASH_SYNC_INTERVAL="3600",
                              KLASH_DEBOUNCE="0.2")
        try:
            def calendars() -> list[dict]:
                return json.loads(fetch(daemon.url, "/healthz").body)["calendars"]

            wait_for(lambda: len(calendars()) == 2 and all(c["ok"] for c in calendars()), 30, "first sync")
            # The organiser empties the file by mistake: Milja's four events would all go.
            path.write_text(programme(server, {}))
            wait_for(lambda: any(c["error"] and "refusing to delete 4 of 4" in c["error"]
                                 for c in calendars()), 30, "the guard")
            assert len(copies_on(server)) == 4  # hers are all still there (Ulla's 3 went)
            confirmed = cli(tmp_path, "sync", "--allow-mass-delete", env=env)
            assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
            assert "handed over" in confirmed.stderr
            # the line `sync --allow-mass-delete` prints without the daemon (it was
            # "milja-kopsi: +0 ~0 -4", a format of the hand-over's own)
            assert re.search(r"^ok +milja-kopsi +\+0 ~0 -4 ", confirmed.stdout, re.M), confirmed.stdout
            assert copies_on(server) == {}
        finally:
            daemon.proc.send_signal(signal.SIGTERM)
            daemon.proc.wait(timeout=15)
    finally:
        server.stop()


def test_plan_on_a_fresh_installation_writes_nothing(tmp_path):
    """`plan` before anything ran: says what would be created, creates nothing anywhere."""
    server = start_radicale(tmp_path / "radicale")
    try:
        path = tmp_path / "programme.toml"
        path.write_text(programme(server, SESSIONS))
        planned = cli(tmp_path, "plan", env={"KLASH_PROGRAMME": str(path)})
        assert planned.returncode == 0, planned.stdout + planned.stderr
        assert "create  janakkala@klash.test" in planned.stdout
        assert server.recorder.count(methods={"MKCALENDAR", "PUT", "DELETE", "PROPPATCH"}) == 0
        assert not (tmp_path / "state").exists()  # no state directory, no embedded storage
        # The shipped programme, all on the embedded server: nothing set up, nothing created.
        shipped = cli(tmp_path, "plan")
        assert shipped.returncode == 0, shipped.stderr
        assert "has not been set up yet" in shipped.stderr
        assert not (tmp_path / "state").exists()
    finally:
        server.stop()


def test_invites_send_beside_the_daemon_is_handed_over(tmp_path, smtp):
    """`invites --send` while `run` holds the state directory: the daemon sends, now."""
    from tests.fixtures.invite_helpers import header, read, session

    path = tmp_path / "programme.toml"
    path.write_text(header() + session("tuleva", "date = 2099-05-04", ["milja-kopsi"]))
    env = {"KLASH_PROGRAMME": str(path), **smtp.env()}
    # A long quiet period: without the hand-over, nothing would be sent during this test.
    daemon = start_daemon(tmp_path, path, KLASH_INVITE_DELAY="3600", KLASH_SYNC_INTERVAL="3600",
                          **smtp.env())
    try:
        wait_for(lambda: fetch(daemon.url, "/healthz").status in (200, 503), 30, "started")
        assert smtp.handler.messages() == []
        sent = cli(tmp_path, "invites", "--send", env=env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "handed over" in sent.stderr
        assert "summary: 1 sent, 0 not sent" in sent.stdout
        [message] = smtp.handler.messages()
        invite = read(message)
        assert (invite.to, invite.method, invite.uid) == ("milja@example.test", "REQUEST",
                                                          "tuleva@klash.test")
        again = cli(tmp_path, "invites", "--send", env=env)  # nothing new: nothing sent
        assert "summary: 0 sent" in again.stdout
        assert len(smtp.handler.messages()) == 1
    finally:
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.proc.wait(timeout=15)

