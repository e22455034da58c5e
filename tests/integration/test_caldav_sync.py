"""CalDAV push against real servers, Radicale and Xandikos: the same suite over both.

Calendars are read back with the caldav library (not with our adapter), requests are
counted at the server, and a mentor's own event sits in the same calendar through
every scenario and must come out byte for byte as it went in.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import caldav
import icalendar

from klash_sync.settings import Settings
from klash_sync.state.store import Store
from tests.fixtures.caldav_world import ENV, SESSIONS, World, mentor_block, programme
from tests.fixtures.common import ROOT
from tests.fixtures.servers import PASSWORDS, Fault, start_radicale, start_xandikos


def test_first_sync_puts_right_events_in_right_calendars_and_second_is_free(world):
    report = world.sync(programme(world.server, SESSIONS))
    assert report.ok, [r.error for r in report.results]
    milja, ulla = world.events("alice"), world.events("bob")
    assert set(milja) == {"janakkala", "joensuu", "yhteinen"}
    assert set(ulla) == {"joensuu", "vantaa", "yhteinen"}
    start = milja["joensuu"]["DTSTART"].dt
    assert start.astimezone(UTC) == datetime(2019, 10, 1, 6, 0, tzinfo=UTC)
    for event in list(milja.values()) + list(ulla.values()):
        assert "ATTENDEE" not in event
        assert "ORGANIZER" not in event
        assert event["X-KLASH-SYNC"]

    world.server.recorder.reset()
    again = world.sync(programme(world.server, SESSIONS))
    assert again.ok
    rec = world.server.recorder
    assert rec.count(methods={"PUT", "DELETE", "MKCALENDAR", "PROPPATCH"}) == 0
    assert rec.count() <= 2, rec.requests  # at most one request per calendar
    assert all(r.changed == 0 for r in again.results)


def test_each_change_reaches_exactly_the_calendars_it_affects(world):
    text = programme(world.server, SESSIONS)
    assert world.sync(text).ok
    href_of = {sid: e for sid, e in world.events("bob").items()}
    foreign_path, foreign_bytes, foreign_etag = world.put_foreign("bob")
    seq_before = int(world.events("bob")["vantaa"]["SEQUENCE"])

    prefix = {user: "/" + str(world.calendar(user).url).split("/", 3)[3] for user in ("alice", "bob")}

    def step(sessions, **expected):
        """Sync, then check the writes per calendar: expected[user] = (PUTs, DELETEs)."""
        world.server.recorder.reset()
        report = world.sync(programme(world.server, sessions))
        assert report.ok, [r.error for r in report.results]
        rec = world.server.recorder
        for user in ("alice", "bob"):
            got = (rec.count(prefix[user], {"PUT"}), rec.count(prefix[user], {"DELETE"}))
            assert got == expected.get(user, (0, 0)), (user, rec.requests)
        return report

    # Reschedule Vantaa (Ulla only): one update, same UID, higher SEQUENCE, same resource.
    sessions = dict(SESSIONS, vantaa=SESSIONS["vantaa"].replace("2019-10-08", "2019-10-09"))
    step(sessions, bob=(1, 0))
    vantaa = world.events("bob")["vantaa"]
    assert vantaa["DTSTART"].dt.isoformat() == "2019-10-09"
    assert int(vantaa["SEQUENCE"]) == seq_before + 1
    assert "vantaa" not in world.events("alice")

    # Retitle the joint session (both): one update in each calendar.
    sessions["yhteinen"] = sessions["yhteinen"].replace('"Yhteinen"', '"Yhteinen tilaisuus"')
    step(sessions, alice=(1, 0), bob=(1, 0))
    assert str(world.events("alice")["yhteinen"]["SUMMARY"]) == "Yhteinen tilaisuus"

    # Cancel Janakkala (Milja only): updated to STATUS:CANCELLED, not deleted.
    sessions["janakkala"] += '\nstatus = "cancelled"'
    step(sessions, alice=(1, 0))
    assert world.events("alice")["janakkala"]["STATUS"] == "CANCELLED"

    # Add Ulla to Janakkala: she gains it; Milja's copy is updated, because the mentors'
    # names are part of its description.
    sessions["janakkala"] = sessions["janakkala"].replace('["milja-kopsi"]', '["milja-kopsi", "ulla-nord"]')
    step(sessions, alice=(1, 0), bob=(1, 0))
    assert "janakkala" in world.events("bob")
    assert "Ulla" in str(world.events("alice")["janakkala"]["DESCRIPTION"])

    # Remove Milja from Joensuu: she loses it, Ulla's copy is updated (names again).
    sessions["joensuu"] = sessions["joensuu"].replace('["milja-kopsi", "ulla-nord"]', '["ulla-nord"]')
    step(sessions, alice=(0, 1), bob=(1, 0))
    assert "joensuu" not in world.events("alice")
    assert "joensuu" in world.events("bob")

    # Remove Vantaa from the programme: deleted from Ulla's calendar.
    del sessions["vantaa"]
    step(sessions, bob=(0, 1))
    assert "vantaa" not in world.events("bob")

    # The mentor's own event never changed.
    after = world.get("bob", foreign_path)
    assert after.status == 200
    assert after.body == foreign_bytes
    assert after.headers.get("etag", "") == foreign_etag
    assert set(href_of) >= {"joensuu", "yhteinen"}


def test_drift_is_put_back_and_foreign_edits_are_left_alone(world, caplog):
    text = programme(world.server, SESSIONS)
    assert world.sync(text).ok
    foreign_path, foreign_bytes, _ = world.put_foreign("alice")
    cal = world.calendar("alice")
    ours = {str(icalendar.Calendar.from_ical(o.data).walk("VEVENT")[0]["UID"]): o for o in cal.events()}
    # Someone deletes one of our events and edits another in their calendar app.
    ours["janakkala@klash.test"].delete()
    edited = ours["yhteinen@klash.test"]
    edited.data = edited.data.replace("SUMMARY:Yhteinen", "SUMMARY:Muokattu")
    edited.save()
    edited_seq = int(world.events("alice")["yhteinen"]["SEQUENCE"])

    caplog.set_level("INFO", logger="klash_sync")
    report = world.sync(text)
    assert report.ok
    milja = world.events("alice")
    assert set(milja) == {"janakkala", "joensuu", "yhteinen"}
    assert str(milja["yhteinen"]["SUMMARY"]) == "Yhteinen"
    # Written back over the app's edit with a SEQUENCE above the edited copy's, so that
    # no client takes our correction for an old version.
    assert int(milja["yhteinen"]["SEQUENCE"]) > edited_seq
    result = next(r for r in report.results if r.mentor == "milja-kopsi")
    assert result.restored == ["janakkala@klash.test"]
    assert result.raised == ["yhteinen"]
    assert "put back janakkala@klash.test" in caplog.text
    assert "SEQUENCE of yhteinen raised" in caplog.text
    assert world.get("alice", foreign_path).body == foreign_bytes


def test_precondition_failure_leads_to_a_reread_not_a_failed_sync(world):
    text = programme(world.server, SESSIONS)
    assert world.sync(text).ok
    world.server.recorder.faults.append(Fault("412", methods=("PUT",), times=1))
    moved = dict(SESSIONS, vantaa=SESSIONS["vantaa"].replace("2019-10-08", "2019-10-10"))
    report = world.sync(programme(world.server, moved))
    assert report.ok, [r.error for r in report.results]
    assert world.events("bob")["vantaa"]["DTSTART"].dt.isoformat() == "2019-10-10"


def test_lost_create_response_is_retried_without_duplicate(world):
    """The PUT reaches the server but the answer is lost; the retry must not duplicate."""
    text = programme(world.server, SESSIONS)
    # The first PUT is stored by the server, then the connection is cut before the answer.
    rec = world.server.recorder
    inner = rec.app
    state = {"done": False}

    def lose_first_answer(environ, start_response):
        result = list(inner(environ, start_response))
        if environ["REQUEST_METHOD"] == "PUT" and not state["done"]:
            state["done"] = True
            raise ConnectionAbortedError("answer lost")
        return result

    rec.app = lose_first_answer
    first = world.sync(text)
    assert not first.ok  # one calendar failed on the lost answer
    rec.app = inner
    second = world.sync(text)
    assert second.ok, [r.error for r in second.results]
    assert set(world.events("alice")) == {"janakkala", "joensuu", "yhteinen"}  # no duplicates
    assert set(world.events("bob")) == {"joensuu", "vantaa", "yhteinen"}


def test_mass_delete_is_refused_unless_allowed(world):
    many = {f"s{n}": f'title = "S{n}"\ndate = 2019-11-{n + 1:02d}\nmentors = ["milja-kopsi"]'
            for n in range(6)}
    assert world.sync(programme(world.server, many)).ok
    report = world.sync(programme(world.server, {"s0": many["s0"]}))
    milja = next(r for r in report.results if r.mentor == "milja-kopsi")
    assert not milja.ok
    assert "--allow-mass-delete" in milja.error
    assert len(world.events("alice")) == 6
    assert world.sync(programme(world.server, {"s0": many["s0"]}), allow_mass_delete=True).ok
    assert set(world.events("alice")) == {"s0"}


def test_mentor_leaving_the_programme_is_cleaned_up(world):
    assert world.sync(programme(world.server, SESSIONS)).ok
    foreign_path, foreign_bytes, _ = world.put_foreign("bob")
    only_milja = {k: v.replace(', "ulla-nord"', "").replace('"ulla-nord", ', "")
                  for k, v in SESSIONS.items() if k != "vantaa"}
    report = world.sync(programme(world.server, only_milja, mentors=("milja",)))
    assert report.ok, [r.error for r in report.results]
    assert world.events("bob") == {}
    assert world.get("bob", foreign_path).body == foreign_bytes
    assert set(world.events("alice")) == {"janakkala", "joensuu", "yhteinen"}
    # Nothing left to clean up afterwards.
    assert [r.mentor for r in world.sync(programme(world.server, only_milja, mentors=("milja",))).results] \
        == ["milja-kopsi"]


def test_state_store_lost_reconciles_in_place_with_higher_sequences(world, tmp_path):
    text = programme(world.server, SESSIONS)
    assert world.sync(text).ok
    before = {u: world.events(u) for u in ("alice", "bob")}
    hrefs = {u: sorted(str(e.url) for e in world.calendar(u).events()) for u in ("alice", "bob")}
    assert all(hrefs.values())
    foreign_path, foreign_bytes, _ = world.put_foreign("alice")
    # The state database is deleted: a new, empty one takes its place.
    world.store.close()
    world.store = Store(tmp_path / "new-state" / "state.sqlite3")
    world.server.recorder.reset()
    report = world.sync(text)
    assert report.ok, [r.error for r in report.results]
    # Each event is written over once, in place, with a SEQUENCE above the one before
    # (the new store cannot know which numbers clients saw: see state.py); no deletes.
    assert world.server.recorder.count(methods={"DELETE"}) == 0
    assert world.server.recorder.count(methods={"PUT"}) == sum(len(b) for b in before.values())
    for user in ("alice", "bob"):
        after = world.events(user)
        assert set(after) == set(before[user])
        for sid, event in after.items():
            assert int(event["SEQUENCE"]) > int(before[user][sid]["SEQUENCE"])
        kept = sorted(str(e.url) for e in world.calendar(user).events()
                      if not str(e.url).endswith(foreign_path.rsplit("/", 1)[-1]))
        assert kept == hrefs[user]  # rewritten in place: the same resources
    assert world.get("alice", foreign_path).body == foreign_bytes
    world.server.recorder.reset()
    assert world.sync(text).ok
    assert world.server.recorder.count(methods={"PUT", "DELETE"}) == 0


def test_cli_sync_exit_codes_and_plan(world, tmp_path):
    path = tmp_path / "programme.toml"
    path.write_text(programme(world.server, SESSIONS))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    env.update(ENV, KLASH_STATE_DIR=str(tmp_path / "cli-state"), KLASH_EMBEDDED_CALDAV="false",
               KLASH_PROGRAMME=str(path), KLASH_REQUEST_TIMEOUT="3",
               KLASH_SYNC_WORKERS="1")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "klash_sync", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    planned = cli("plan")
    assert planned.returncode == 0, planned.stderr
    assert "create  janakkala@klash.test" in planned.stdout
    assert world.server.recorder.count(methods={"PUT"}) == 0
    done = cli("sync")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "summary: 2 calendars, 0 failed, 6 created" in done.stdout
    assert "nothing to do" in cli("plan").stdout
    # A missing password fails that calendar alone, with exit 1 and the mentor named.
    del env["PW_BOB"]
    partial = cli("sync")
    assert partial.returncode == 1
    assert "ulla-nord" in partial.stdout
    assert "PW_BOB" in partial.stdout
    assert "Traceback" not in partial.stderr
    # Purge removes only our events from one calendar.
    env["PW_BOB"] = PASSWORDS["bob"]
    foreign_path, foreign_bytes, _ = world.put_foreign("bob")
    purged = cli("purge", "ulla-nord")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert world.events("bob") == {}
    assert world.get("bob", foreign_path).body == foreign_bytes


def test_killed_sync_process_leaves_no_duplicates(world, tmp_path):
    many = {f"s{n}": f'title = "S{n}"\ndate = 2019-11-{n + 1:02d}\nmentors = ["milja-kopsi", "ulla-nord"]'
            for n in range(12)}
    path = tmp_path / "programme.toml"
    path.write_text(programme(world.server, many))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    env.update(ENV, KLASH_STATE_DIR=str(tmp_path / "kill-state"), KLASH_EMBEDDED_CALDAV="false",
               KLASH_PROGRAMME=str(path), KLASH_SYNC_WORKERS="1")
    proc = subprocess.Popen([sys.executable, "-m", "klash_sync", "sync"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill it as soon as some, but not all, events have been written.
    deadline = time.monotonic() + 60
    while world.server.recorder.count(methods={"PUT"}) < 5 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    written = world.server.recorder.count(methods={"PUT"})
    assert 5 <= written < 24, "the kill must land mid-run"
    again = subprocess.run([sys.executable, "-m", "klash_sync", "sync"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(world.events("alice")) == set(many)
    assert set(world.events("bob")) == set(many)


def test_one_server_down_mid_run_others_synced_then_converges(tmp_path):
    rad = start_radicale(tmp_path / "rad")
    xan = start_xandikos(tmp_path / "xan")
    try:
        text = ('[programme]\nname = "Testi"\nuid_domain = "klash.test"\norganiser = "K"\n'
                + mentor_block(rad, "milja-kopsi", "Milja", "alice")
                + mentor_block(xan, "ulla-nord", "Ulla", "bob")
                + "".join(f'\n[[sessions]]\nid = "s{n}"\ntitle = "S{n}"\ndate = 2019-11-{n + 1:02d}\n'
                          'mentors = ["milja-kopsi", "ulla-nord"]\n' for n in range(4)))
        store = Store(tmp_path / "state.sqlite3")
        settings = Settings(state_dir=tmp_path, embedded_caldav=False, request_timeout=3,
                            _env_file=None)  # type: ignore[call-arg]
        # Radicale goes down after its second write, in the middle of the pass.
        puts = {"n": 0}

        def maybe_stop(method, path):
            if method == "PUT":
                puts["n"] += 1
                if puts["n"] == 2:  # stop the real server from another thread, mid-pass
                    threading.Thread(target=rad.stop).start()
        rad.recorder.on_request = maybe_stop
        world_r = World(rad, store, settings)
        report = world_r.sync(text)
        by = {r.mentor: r for r in report.results}
        assert not by["milja-kopsi"].ok
        # Refused or timed out, depending on where the stop caught a request: one line, naming it.
        error = by["milja-kopsi"].error
        assert "connection" in error or "in time" in error, error
        assert f"127.0.0.1:{rad.port}" in error, error
        assert by["ulla-nord"].ok
        assert by["ulla-nord"].created == 4
        # Back up on the same port: the next run converges, nothing duplicated.
        rad.recorder.on_request = None
        deadline = time.monotonic() + 10
        while not rad.stopped and time.monotonic() < deadline:
            time.sleep(0.05)
        rad.start()
        assert world_r.sync(text).ok
        assert set(world_r.events("alice")) == {"s0", "s1", "s2", "s3"}
        store.close()
    finally:
        rad.stop()
        xan.stop()


def test_changed_target_moves_events_and_cleans_the_old_calendar(world):
    text = programme(world.server, SESSIONS)
    assert world.sync(text).ok
    old = world.calendar("alice")
    old_url = str(old.url)
    foreign_path, foreign_bytes, _ = world.put_foreign("alice")
    # Milja's events now go to another calendar on the same server.
    moved = text.replace('calendar = "Klash"\n', 'calendar = "Klash uusi"\n', 1) if world.server.kind == \
        "radicale" else text.replace('calendar = "Klash Milja"', 'calendar = "Klash uusi"')
    report = world.sync(moved)
    assert report.ok, [r.error for r in report.results]
    assert any(r.leaving and r.mentor == "milja-kopsi" and r.deleted == 3 for r in report.results)
    client = caldav.DAVClient(url=world.server.calendar_url("alice"), username="alice",
                              password=PASSWORDS["alice"])
    by_name = {c.get_display_name(): c for c in client.principal().calendars()}
    new_uids = sorted(str(icalendar.Calendar.from_ical(o.data).walk("VEVENT")[0]["UID"])
                      for o in by_name["Klash uusi"].events())
    assert new_uids == ["janakkala@klash.test", "joensuu@klash.test", "yhteinen@klash.test"]
    old_left = [o for o in next(c for c in by_name.values() if str(c.url) == old_url).events()]
    assert [b"Hammasl" in o.data.encode() for o in old_left] == [True]  # only the mentor's own event
    assert world.get("alice", foreign_path).body == foreign_bytes
