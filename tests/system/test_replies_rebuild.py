"""A lost state directory is filled again from the mailbox (issue 20, "nothing lost"): with
`KLASH_IMAP_MOVE_TO` the answers already counted were moved out of the read folder, so a new
store reads the move-to folder once, read-only, and then goes on as usual; without it the read
folder still holds them all. Every answer comes back, none twice, on a real Cyrus.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest

from klash_sync.state.store import Store
from tests.fixtures import reply_samples as shape
from tests.fixtures.answers_world import deliver, flags, imap_env, login, mail_server, programme, session
from tests.fixtures.common import run_cli

Y = datetime.now(UTC).year + 1
SESSIONS = (session("kickoff", f"{Y}-06-10T10:00:00", f"{Y}-06-10T16:00:00", ["milja", "ulla"])
            + session("winter", f"{Y}-01-20T09:00:00", f"{Y}-01-20T10:00:00", ["milja", "ulla"]))
T0 = datetime(Y - 1, 12, 1, 9, 0, tzinfo=UTC)
MILJA, ULLA = "milja@example.test", "ulla@example.test"
MOVED = "INBOX.Answers"


@pytest.fixture(scope="module")
def cyrus():
    yield from mail_server()


def _world(tmp_path, cyrus, box, **extra):
    path = tmp_path / "programme.toml"
    path.write_text(programme(SESSIONS), encoding="utf-8")
    env = {"KLASH_PROGRAMME": str(path), "KLASH_STATE_DIR": str(tmp_path / "state"),
           **imap_env(cyrus, box), **extra}
    first = run_cli("replies", env=env)
    assert first.code == 0, first.out + first.err
    store = Store.readonly(tmp_path / "state" / "state.sqlite3")
    try:
        with store.reading() as db:
            return env, dict(db.execute("SELECT id, sequence FROM sessions").fetchall())
    finally:
        store.close()


def _answers(tmp_path) -> list[tuple[str, str, str, str]]:
    """(session, mentor, answer, source without the UIDVALIDITY and UID) of every answer kept."""
    store = Store.readonly(tmp_path / "state" / "state.sqlite3")
    try:
        return sorted((a.session, a.mentor, a.answer, a.source.rsplit(":", 2)[0])
                      for a in store.all_answers())
    finally:
        store.close()


def _shown(env) -> dict[tuple[str, str], tuple[str, str, str]]:
    shown = run_cli("attendance", "--json", env=env)
    assert shown.code == 0, shown.err
    return {(s["id"], m["id"]): (m["answer"], m["via"], m["comment"])
            for s in json.loads(shown.out)["sessions"] for m in s["mentors"]}


def test_a_rebuilt_store_reads_the_moved_answers_again_once_and_moves_nothing_back(tmp_path, cyrus):
    imap = login(cyrus, "box1")
    assert imap.create(MOVED)[0] == "OK"
    imap.logout()
    env, seq = _world(tmp_path, cyrus, "box1", KLASH_IMAP_MOVE_TO=MOVED)
    deliver(cyrus, "box1",
            shape.outlook("kickoff@klash.test", MILJA, "Milja Kopsi", "ACCEPTED", seq["kickoff"], T0,
                          "Kickoff"),
            shape.google("kickoff@klash.test", ULLA, "Ulla Nord", "DECLINED", seq["kickoff"],
                         T0 + timedelta(minutes=1), "Kickoff", comment="Olen lomalla"),
            shape.google("7kq1t8@google.com", ULLA, "Ulla Nord", "ACCEPTED", 0, T0, "Someone else's"),
            shape.apple("winter@klash.test", MILJA, "Milja Kopsi", "TENTATIVE", seq["winter"],
                        T0 + timedelta(minutes=2), "Winter"))
    read = run_cli("replies", env=env)
    assert "summary: 4 messages read, 3 new answers, 1 ignored" in read.out, read.out + read.err
    assert len(flags(cyrus, "box1", MOVED)) == 3
    before = _shown(env)
    moved, left = flags(cyrus, "box1", MOVED), flags(cyrus, "box1")
    # one more answer arrives while the state directory is lost
    deliver(cyrus, "box1", shape.thunderbird("winter@klash.test", ULLA, "Ulla Nord", "ACCEPTED",
                                             seq["winter"], T0 + timedelta(minutes=3), "Winter",
                                             comment="Tulen junalla"))
    shutil.rmtree(tmp_path / "state")

    rebuilt = run_cli("replies", env=env)
    assert rebuilt.code == 0, rebuilt.out + rebuilt.err
    assert "summary: 5 messages read, 4 new answers, 1 ignored" in rebuilt.out, rebuilt.out
    assert _shown(env) == {**before, ("winter", "ulla"): ("accepted", "email", "Tulen junalla")}
    # the moved ones by the folder they were read from, the new one as the read folder's
    assert _answers(tmp_path) == [("kickoff", "milja", "accepted", f"email:{MOVED}"),
                                  ("kickoff", "ulla", "declined", f"email:{MOVED}"),
                                  ("winter", "milja", "tentative", f"email:{MOVED}"),
                                  ("winter", "ulla", "accepted", "email")]
    # the moved answers were only read: same UIDs, same flags; only the new answer joined them
    now_moved = flags(cyrus, "box1", MOVED)
    assert {uid: now_moved[uid] for uid in moved} == moved
    assert len(now_moved) == len(moved) + 1
    assert flags(cyrus, "box1") == left  # the foreign message stays, untouched
    assert all("\\Seen" not in f for f in now_moved.values())

    again = run_cli("replies", env=env)  # the move-to folder is read once, not on every run
    assert "summary: 0 messages read, 0 new answers, 0 ignored" in again.out, again.out
    assert len(_answers(tmp_path)) == 4


def test_without_a_move_to_folder_a_rebuilt_store_reads_the_answers_from_the_folder(tmp_path, cyrus):
    env, seq = _world(tmp_path, cyrus, "box2")
    deliver(cyrus, "box2",
            shape.thunderbird("kickoff@klash.test", MILJA, "Milja Kopsi", "DECLINED", seq["kickoff"],
                              T0, "Kickoff", comment="Sairaana"),
            shape.apple("winter@klash.test", ULLA, "Ulla Nord", "ACCEPTED", seq["winter"],
                        T0 + timedelta(minutes=1), "Winter"))
    assert "2 new answers" in run_cli("replies", env=env).out
    before, mail = _shown(env), flags(cyrus, "box2")
    shutil.rmtree(tmp_path / "state")

    rebuilt = run_cli("replies", env=env)
    assert rebuilt.code == 0, rebuilt.out + rebuilt.err
    assert "summary: 2 messages read, 2 new answers, 0 ignored" in rebuilt.out, rebuilt.out
    assert _shown(env) == before
    assert before[("kickoff", "milja")] == ("declined", "email", "Sairaana")
    assert len(_answers(tmp_path)) == 2
    assert flags(cyrus, "box2") == mail
