"""Faults: failing CalDAV servers, a lost state store, leaked secrets, kill -9, and load.

Each promise here is one test that fails if the promise breaks: a fault is reported for
that mentor alone and the next sync converges; a lost store reconciles without writes
and without deleting anything not provably ours; no secret appears anywhere; a daemon
killed at any moment restarts into a converged state without duplicates; and 10,000
feed requests from another process all succeed.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import time

import icalendar
import pytest

from klash_sync.settings import Settings
from klash_sync.state.store import Store
from tests.fixtures.caldav_world import World
from tests.fixtures.common import ROOT, fetch
from tests.fixtures.processes import start_daemon, stop, wait_for
from tests.fixtures.servers import PASSWORDS, Fault, TcpProxy, foreign_event, start_radicale

ARTIFACTS = ROOT / "test-artifacts"


def two_mentor_programme(milja_base: str, ulla_base: str, sessions: dict[str, str]) -> str:
    text = '[programme]\nname = "Testi"\nuid_domain = "klash.test"\norganiser = "Kuntaliitto"\n'
    for mid, name, user, base in (("milja-kopsi", "Milja", "alice", milja_base),
                                  ("ulla-nord", "Ulla", "bob", ulla_base)):
        text += (f'\n[[mentors]]\nid = "{mid}"\nname = "{name}"\n[mentors.caldav]\n'
                 f'url = "{base}/{user}/"\nusername = "{user}"\npassword_env = "PW_{user.upper()}"\n')
    for sid, day in sessions.items():
        text += (f'\n[[sessions]]\nid = "{sid}"\ntitle = "{sid}"\ndate = {day}\n'
                 'mentors = ["milja-kopsi", "ulla-nord"]\n')
    return text


def our_events(server, user: str) -> list[str]:
    """UIDs of our events in the user's calendars (duplicates kept, so they can be counted)."""
    import caldav

    client = caldav.DAVClient(url=f"{server.base}/{user}/", username=user, password=PASSWORDS[user])
    uids = []
    for cal in client.principal().calendars():
        for obj in cal.events():
            for event in icalendar.Calendar.from_ical(obj.data).walk("VEVENT"):
                if str(event["UID"]).endswith("@klash.test"):
                    uids.append(str(event["UID"]).split("@")[0])
    return sorted(uids)


@pytest.fixture
def radicale(tmp_path):
    server = start_radicale(tmp_path / "radicale")
    yield server
    server.stop()


FAULTS = {
    "500": (Fault("500", path_prefix="/bob/"), "500"),
    "hang": (Fault("hang", path_prefix="/bob/"), "in time"),
    "malformed XML": (Fault("badxml", path_prefix="/bob/", methods=("PROPFIND", "REPORT")),
                      "malformed XML"),
    "412 every time": (Fault("412", path_prefix="/bob/", methods=("PUT",)), "keeps changing"),
    "connection closed": (None, "closed"),
}


@pytest.mark.parametrize("kind", list(FAULTS))
def test_server_fault_reported_for_that_mentor_alone_then_converges(tmp_path, radicale, kind):
    fault, words = FAULTS[kind]
    proxy = TcpProxy(radicale.port)
    store = Store(tmp_path / "state.sqlite3")
    settings = Settings(state_dir=tmp_path, embedded_caldav=False, request_timeout=1,
                        _env_file=None)  # type: ignore[call-arg]
    world = World(radicale, store, settings)
    v1 = {"a": "2019-10-01", "b": "2019-10-02"}
    v2 = {"a": "2019-10-03", "c": "2019-10-04"}
    try:
        assert world.sync(two_mentor_programme(radicale.base, proxy.base, v1)).ok
        if fault is not None:
            radicale.recorder.faults.append(fault)
        else:
            proxy.mode = "close"
        report = world.sync(two_mentor_programme(radicale.base, proxy.base, v2))
        by = {r.mentor: r for r in report.results}
        assert by["milja-kopsi"].ok, by["milja-kopsi"].error
        assert not by["ulla-nord"].ok
        error = by["ulla-nord"].error
        assert words in error, error
        assert "\n" not in error, error
        assert len(error) < 300, error
        assert our_events(radicale, "alice") == ["a", "c"]
        # The fault goes away: the next sync converges, with no duplicates.
        radicale.recorder.faults.clear()
        proxy.mode = "pass"
        again = world.sync(two_mentor_programme(radicale.base, proxy.base, v2))
        assert again.ok, [r.error for r in again.results]
        assert our_events(radicale, "bob") == ["a", "c"]
    finally:
        proxy.close()
        store.close()


def test_truncated_state_store_reconciles_and_deletes_nothing_unproven(tmp_path, radicale):
    state = tmp_path / "state"
    settings = Settings(state_dir=state, embedded_caldav=False, _env_file=None)  # type: ignore[call-arg]
    world = World(radicale, Store(state / "state.sqlite3"), settings)
    sessions = {"a": "2019-10-01", "b": "2019-10-02"}
    text = two_mentor_programme(radicale.base, radicale.base, sessions)
    assert world.sync(text).ok
    # Three lookalikes in Milja's calendar: our UID domain without the marker, the marker
    # with another UID domain, and a real foreign event. None may be touched.
    collection = "/" + str(world.calendar("alice").url).split("/", 3)[3]
    marker_only = foreign_event("x@elsewhere.test").replace(b"SUMMARY:", b"X-KLASH-SYNC:x\r\nSUMMARY:")
    lookalikes = {
        "domain-only.ics": foreign_event("sneaky@klash.test"),
        "marker-only.ics": marker_only,
        "foreign.ics": foreign_event(),
    }
    before = {}
    for name, body in lookalikes.items():
        put = fetch(radicale.base, collection + name, "PUT",
                    {**radicale.auth("alice"), "Content-Type": "text/calendar"}, body)
        assert put.status in (201, 204)
        before[name] = fetch(radicale.base, collection + name, headers=radicale.auth("alice")).body
    # The store is truncated mid-file, as a crashed disk might leave it.
    world.store.close()
    db = state / "state.sqlite3"
    db.write_bytes(db.read_bytes()[:100])
    for side in ("state.sqlite3-wal", "state.sqlite3-shm"):
        (state / side).unlink(missing_ok=True)
    damaged = db.read_bytes()
    world.store = Store(db)
    assert (state / "state.sqlite3.bad-1").read_bytes() == damaged  # kept aside, not deleted
    radicale.recorder.reset()
    report = world.sync(text)
    assert report.ok, [r.error for r in report.results]
    # The content was already right; each event is rewritten once, in place, with a higher
    # SEQUENCE (a new store cannot know which numbers clients saw: see state.py).
    assert radicale.recorder.count(methods={"DELETE"}) == 0
    assert radicale.recorder.count(methods={"PUT"}) == 4  # a and b, in both calendars
    # Removing a session: ours is deleted, the lookalikes are not.
    assert world.sync(two_mentor_programme(radicale.base, radicale.base, {"a": "2019-10-01"})).ok
    assert our_events(radicale, "alice").count("a") == 1
    assert "b" not in our_events(radicale, "alice")
    for name, body in before.items():
        assert fetch(radicale.base, collection + name, headers=radicale.auth("alice")).body == body
    world.store.close()


def test_secrets_appear_nowhere(tmp_path, radicale):
    """Passwords in the environment or a file, and the feed secret: never in any output."""
    secret_file = tmp_path / "bob.password"
    secret_file.write_text(PASSWORDS["bob"] + "\n")
    server_secret = "feed-secret-that-must-not-leak-0123"
    wrong = "wrong-password-that-must-not-leak"
    text = '[programme]\nname = "T"\nuid_domain = "klash.test"\norganiser = "K"\n'
    text += (f'\n[[mentors]]\nid = "milja-kopsi"\nname = "Milja"\n[mentors.caldav]\n'
             f'url = "{radicale.base}/alice/"\nusername = "alice"\npassword_env = "PW_WRONG"\n')
    text += (f'\n[[mentors]]\nid = "ulla-nord"\nname = "Ulla"\n[mentors.caldav]\n'
             f'url = "{radicale.base}/bob/"\nusername = "bob"\npassword_file = "{secret_file}"\n')
    text += ('\n[[sessions]]\nid = "s"\ntitle = "S"\ndate = 2019-10-01\n'
             'mentors = ["milja-kopsi", "ulla-nord"]\n')
    path = tmp_path / "programme.toml"
    path.write_text(text)
    # Bob's server echoes every request header, Authorization included, in its 500 page.
    radicale.recorder.faults.append(Fault("echo", path_prefix="/bob/"))
    secrets = [wrong, PASSWORDS["bob"], server_secret,
               base64.b64encode(f"alice:{wrong}".encode()).decode(),
               base64.b64encode(f"bob:{PASSWORDS['bob']}".encode()).decode()]
    outputs = []
    for fmt in ("text", "json"):
        d = start_daemon(tmp_path / fmt, path, PW_WRONG=wrong, KLASH_LOG_LEVEL="DEBUG",
                         KLASH_LOG_FORMAT=fmt, KLASH_SECRET=server_secret, KLASH_PRIVATE_FEEDS="true")
        try:
            wait_for(lambda d=d: len(json.loads(fetch(d.url, "/healthz").body)["calendars"]) == 2,
                     30, "both calendars tried")
            for route in ("/healthz", "/metrics", "/", "/?lang=en", "/mentors/milja-kopsi",
                          "/mentors/ulla-nord", "/feeds/programme.ics"):
                outputs.append(fetch(d.url, route).body.decode())
            health = json.loads(fetch(d.url, "/healthz").body)
            assert all(not c["ok"] for c in health["calendars"]), "both fail, and say why"
        finally:
            stop(d)
        outputs.append(d.log())
        if fmt == "json":  # one JSON object per line, every line
            entries = [json.loads(line) for line in d.log().splitlines() if line.strip()]
            assert any(e["level"] == "WARNING" and "ulla-nord" in e["message"] for e in entries)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    env.update(PW_WRONG=wrong, KLASH_PROGRAMME=str(path), KLASH_STATE_DIR=str(tmp_path / "cli"),
               KLASH_SECRET=server_secret, KLASH_PRIVATE_FEEDS="true", KLASH_EMBEDDED_CALDAV="false")
    for args in (["sync"], ["plan"], ["-v", "sync"], ["feeds"]):
        done = subprocess.run([sys.executable, "-m", "klash_sync", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        outputs += [done.stdout, done.stderr]
    everything = "\n".join(outputs)
    assert "ulla-nord" in everything
    assert "milja-kopsi" in everything
    for secret in secrets:
        assert secret not in everything


def test_kill_9_at_20_random_moments_then_converges(tmp_path, radicale):
    rng = random.Random(20261129)
    versions = [
        {f"s{n}": f"2019-11-{n + 1:02d}" for n in range(24)},
        {**{f"s{n}": f"2019-12-{n + 1:02d}" for n in range(0, 24, 2)}, "new1": "2019-10-01"},
    ]
    path = tmp_path / "programme.toml"
    foreign_path = None
    made = False
    mid_sync = 0
    for round_ in range(20):
        sessions = versions[round_ % 2]
        path.write_text(two_mentor_programme(radicale.base, radicale.base, sessions))
        radicale.recorder.reset()
        d = start_daemon(tmp_path, path, KLASH_SYNC_WORKERS="2")
        # A random moment inside the sync: after a random number of its writes.
        after = rng.randint(1, 20)
        deadline = time.monotonic() + 20
        while radicale.recorder.count(methods={"PUT", "DELETE"}) < after and time.monotonic() < deadline:
            time.sleep(0.001)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(timeout=10)
        # Once alice's calendar exists (made in this round or an earlier one: under load the
        # first kill may land between the two calendars), she keeps an event of her own there.
        made = made or radicale.recorder.count("/alice/", methods={"MKCALENDAR"}) >= 1
        if foreign_path is None and made:
            cal = "/" + str(World(radicale, None, None).calendar("alice").url).split("/", 3)[3]  # type: ignore[arg-type]
            foreign_path = cal + "mine.ics"
            fetch(radicale.base, foreign_path, "PUT",
                  {**radicale.auth("alice"), "Content-Type": "text/calendar"}, foreign_event())
            foreign_bytes = fetch(radicale.base, foreign_path, headers=radicale.auth("alice")).body
        writes = radicale.recorder.count(methods={"PUT", "DELETE"})
        if writes and sorted(set(our_events(radicale, "bob"))) != sorted(sessions):
            mid_sync += 1
    assert mid_sync >= 15, f"only {mid_sync} of 20 kills landed in the middle of a sync"
    final = versions[1]
    path.write_text(two_mentor_programme(radicale.base, radicale.base, final))
    d = start_daemon(tmp_path, path)
    try:
        wait_for(lambda: our_events(radicale, "alice") == sorted(final)
                 and our_events(radicale, "bob") == sorted(final), 60, "convergence after restart")
    finally:
        stop(d)
    assert foreign_path is not None
    assert fetch(radicale.base, foreign_path, headers=radicale.auth("alice")).body == foreign_bytes


def test_ten_thousand_feed_requests_from_another_process(tmp_path):
    d = start_daemon(tmp_path, ROOT / "config" / "programme.toml", KLASH_EMBEDDED_CALDAV="false")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.load", d.url, "/feeds/programme.ics", "--requests", "10000",
             "--conditional", "0.5", "--workers", "8", "--seconds", "300"],
            cwd=ROOT, capture_output=True, text=True, timeout=400, check=True)
    finally:
        stop(d)
    result = json.loads(done.stdout)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load-10k.json").write_text(json.dumps(result, indent=1))
    print(f"\n10,000 feed requests: {result['statuses']}, share of 304s {result['share_304']:.1%}, "
          f"{result['rps']} requests/s")
    assert result["requests"] == 10_000
    assert result["errors"] == {}
    assert result["non_2xx_3xx"] == 0
    assert set(result["statuses"]) == {"200", "304"}
    assert result["statuses"]["304"] == 5000
