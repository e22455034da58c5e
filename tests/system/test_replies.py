"""Answers by e-mail, read from a real Cyrus IMAP mailbox by `klash-sync replies` and shown by
`klash-sync attendance`: the four clients' REPLY shapes count; forged, foreign, removed,
garbage and oversized mail is ignored with a reason and the reader goes on; a second run
reads nothing twice; the mailbox is not altered; TLS is required off loopback.
"""

from __future__ import annotations

import imaplib
import json
from datetime import UTC, datetime, timedelta

import pytest

from klash_sync.state.store import Store
from tests.fixtures import reply_samples as shape
from tests.fixtures.answers_world import (
    AUTHSERV,
    append,
    deliver,
    flags,
    imap_env,
    login,
    mail_server,
    programme,
    session,
    uidvalidity,
)
from tests.fixtures.common import run_cli
from tests.fixtures.tcp_proxy import Relay, outside_address

Y = datetime.now(UTC).year + 1
SESSIONS = (session("kickoff", f"{Y}-06-10T10:00:00", f"{Y}-06-10T16:00:00", ["milja", "ulla"])
            + session("winter", f"{Y}-01-20T09:00:00", f"{Y}-01-20T10:00:00", ["milja", "ulla"]))
T0 = datetime(Y - 1, 12, 1, 9, 0, tzinfo=UTC)
MILJA, ULLA, PEKKA = "milja@example.test", "ulla@example.test", "pekka@example.test"


@pytest.fixture(scope="module")
def cyrus():
    yield from mail_server()


def _env(tmp_path, cyrus, box, path):
    return {"KLASH_PROGRAMME": str(path), "KLASH_STATE_DIR": str(tmp_path / "state"),
            **imap_env(cyrus, box)}


def _sequences(tmp_path) -> dict[str, int]:
    """Each session's SEQUENCE in the store (a new session starts high, see state/revisions)."""
    store = Store.readonly(tmp_path / "state" / "state.sqlite3")
    try:
        with store.reading() as db:
            return dict(db.execute("SELECT id, sequence FROM sessions").fetchall())
    finally:
        store.close()


def _with_header(raw: bytes, header: str) -> bytes:
    return header.encode() + b"\r\n" + raw


def test_four_clients_answers_count_and_everything_else_is_ignored(tmp_path, cyrus):
    path = tmp_path / "programme.toml"
    spring = session("spring", f"{Y}-04-01T09:00:00", f"{Y}-04-01T12:00:00", ["milja", "pekka"])
    path.write_text(programme(SESSIONS + spring), encoding="utf-8")
    env = _env(tmp_path, cyrus, "box1", path)
    first = run_cli("replies", env=env)
    assert first.code == 0, first.out + first.err
    assert "summary: 0 messages read" in first.out
    seq = _sequences(tmp_path)
    # Pekka leaves the spring session: its SEQUENCE goes up, and his answer no longer counts
    path.write_text(programme(SESSIONS + spring.replace('"milja", "pekka"', '"milja"')), encoding="utf-8")

    good = [
        shape.outlook("kickoff@klash.test", MILJA, "Milja Kopsi", "ACCEPTED", seq["kickoff"], T0,
                      "Kickoff"),
        shape.google("kickoff@klash.test", ULLA, "Ulla Nord", "DECLINED", seq["kickoff"],
                     T0 + timedelta(minutes=1), "Kickoff", comment="Olen lomalla"),
        shape.apple("winter@klash.test", MILJA, "Milja Kopsi", "TENTATIVE", seq["winter"],
                    T0 + timedelta(minutes=2), "Winter"),
        shape.thunderbird("winter@klash.test", ULLA, "Ulla Nord", "ACCEPTED", seq["winter"],
                          T0 + timedelta(minutes=3), "Winter", comment="Tulen junalla"),
        # an answer to the spring session as it was before Pekka left
        shape.google("spring@klash.test", MILJA, "Milja Kopsi", "ACCEPTED", seq["spring"],
                     T0 + timedelta(minutes=4), "Spring"),
    ]
    forged = shape.outlook("kickoff@klash.test", MILJA, "Milja Kopsi", "DECLINED", seq["kickoff"],
                           T0 + timedelta(hours=1), "Kickoff").replace(
        b"From: Milja Kopsi <milja@example.test>", b"From: Eve <eve@example.test>")
    bad = [
        shape.garbage(),
        forged,
        shape.google("7kq1t8@google.com", ULLA, "Ulla Nord", "ACCEPTED", 0, T0, "Someone else's"),
        shape.oversized(shape.outlook("winter@klash.test", ULLA, "Ulla Nord", "DECLINED", seq["winter"],
                                      T0 + timedelta(hours=2), "Winter")),
        shape.thunderbird("spring@klash.test", PEKKA, "Pekka Ek", "ACCEPTED", seq["spring"], T0,
                          "Spring"),
        _with_header(shape.google("winter@klash.test", ULLA, "Ulla Nord", "DECLINED", seq["winter"],
                                  T0 + timedelta(hours=3), "Winter"),
                     f"Authentication-Results: {AUTHSERV}; dkim=none; spf=softfail "
                     "smtp.mailfrom=example.test; dmarc=fail header.from=example.test"),
        shape.apple("kickoff@klash.test", MILJA, "Milja Kopsi", "DECLINED", seq["kickoff"] + 1,
                    T0 + timedelta(hours=4), "Kickoff"),
        good[0].replace(b"Message-ID: <outlook-", b"Message-ID: <again-"),  # the same answer twice
    ]
    # bad and good interleaved: each bad one is passed over and the next is read
    for pair in zip(bad, [*good, b"", b"", b""], strict=True):
        for raw in pair:
            if raw == bad[0]:
                append(cyrus, "box1", raw)  # LMTP refuses it: a client put it there
            elif raw:
                deliver(cyrus, "box1", raw)
    before = flags(cyrus, "box1")
    assert len(before) == len(good) + len(bad)

    result = run_cli("replies", env=env)
    assert result.code == 0, result.out + result.err
    assert f"summary: {len(good) + len(bad)} messages read, 5 new answers, 8 ignored" in result.out, \
        result.out
    ignored = [line for line in result.out.splitlines() if line.startswith("ignored message")]
    reasons = " | ".join(ignored)
    for why in ("no iCalendar REPLY in it", "forged: From is not the ATTENDEE", "foreign UID",
                "over KLASH_IMAP_MAX_BYTES; not downloaded", "the ATTENDEE is not a mentor of spring now",
                "Authentication-Results do not pass", f"SEQUENCE {seq['kickoff'] + 1} was never sent",
                "duplicate"):
        assert why in reasons, reasons
    assert len(ignored) == 8
    assert cyrus.passwords["box1"] not in result.out + result.err

    shown = run_cli("attendance", "--json", env=env)
    assert shown.code == 0, shown.err
    answers = {(s["id"], m["id"]): m for s in json.loads(shown.out)["sessions"] for m in s["mentors"]}
    assert {k: (m["answer"], m["via"], m["comment"]) for k, m in answers.items()} == {
        ("kickoff", "milja"): ("accepted", "email", ""),
        ("kickoff", "ulla"): ("declined", "email", "Olen lomalla"),
        ("winter", "milja"): ("tentative", "email", ""),
        ("winter", "ulla"): ("accepted", "email", "Tulen junalla"),
        ("spring", "milja"): ("accepted", "email", ""),
    }
    assert answers[("kickoff", "ulla")]["at"] == (T0 + timedelta(minutes=1)).isoformat()
    assert _sequences(tmp_path)["spring"] > seq["spring"]  # Pekka's leaving raised it
    assert answers[("spring", "milja")]["for_sequence"] == seq["spring"]  # an earlier version
    assert answers[("kickoff", "milja")]["for_sequence"] == seq["kickoff"]
    text = run_cli("attendance", "--session", "spring", env=env)
    assert f"(to an earlier version, SEQUENCE {seq['spring']})" in text.out

    again = run_cli("replies", env=env)
    assert again.code == 0, again.out + again.err
    assert "summary: 0 messages read, 0 new answers, 0 ignored" in again.out
    assert flags(cyrus, "box1") == before  # nothing marked \Seen, moved or deleted
    assert all("\\Seen" not in f for f in before.values())


def test_a_new_uidvalidity_reads_the_folder_again_and_counts_nothing_twice(tmp_path, cyrus):
    path = tmp_path / "programme.toml"
    path.write_text(programme(SESSIONS), encoding="utf-8")
    env = _env(tmp_path, cyrus, "box2", path)
    assert run_cli("replies", env=env).code == 0
    kickoff = _sequences(tmp_path)["kickoff"]
    answer = shape.google("kickoff@klash.test", ULLA, "Ulla Nord", "ACCEPTED", kickoff, T0, "Kickoff")
    deliver(cyrus, "box2", answer)
    assert "1 new answers" in run_cli("replies", env=env).out
    before = uidvalidity(cyrus, "box2")
    # the mailbox is rebuilt from a backup: the same mail, a new UIDVALIDITY
    admin = imaplib.IMAP4("127.0.0.1", cyrus.imap)
    admin.login("admin", cyrus.passwords["admin"])
    admin.setacl("user/box2", "admin", "lrswipkxtecdan")
    assert admin.delete("user/box2")[0] == "OK"
    assert admin.create("user/box2")[0] == "OK"
    admin.logout()
    deliver(cyrus, "box2", answer.replace(b"Message-ID: <", b"Message-ID: <restored-"))
    assert uidvalidity(cyrus, "box2") != before
    result = run_cli("replies", env=env)
    assert result.code == 0, result.out + result.err
    assert "UIDVALIDITY" in result.err
    assert "reading the folder again" in result.err
    assert "summary: 1 messages read, 0 new answers, 1 ignored" in result.out
    assert "duplicate of an answer kept (ulla, kickoff)" in result.out
    shown = json.loads(run_cli("attendance", "--json", env=env).out)
    assert [m["answer"] for s in shown["sessions"] if s["id"] == "kickoff"
            for m in s["mentors"] if m["id"] == "ulla"] == ["accepted"]


def test_plain_imap_off_loopback_needs_starttls_and_the_password_stays_secret(tmp_path, cyrus):
    path = tmp_path / "programme.toml"
    path.write_text(programme(SESSIONS), encoding="utf-8")
    relay = Relay(cyrus.imap, host=outside_address())  # Cyrus here offers no STARTTLS
    try:
        env = {**_env(tmp_path, cyrus, "box3", path),
               **imap_env(cyrus, "box3", host=relay.host, port=relay.port)}
        result = run_cli("replies", env=env)
    finally:
        relay.close()
    assert result.code == 1, result.out + result.err
    assert "offers no STARTTLS; refusing to log in in plain text" in result.err
    assert cyrus.passwords["box3"] not in result.out + result.err
    bad = run_cli("replies", env={**env, "KLASH_IMAP_URL": "pop3://box3@mail.example.test/INBOX"})
    assert bad.code == 2
    assert "KLASH_IMAP_URL: write imaps://" in bad.err
    none = run_cli("replies", env={**env, "KLASH_IMAP_URL": ""})
    assert none.code == 2
    assert "set KLASH_IMAP_URL" in none.err


def test_only_counted_answers_are_moved_and_only_when_asked(tmp_path, cyrus):
    path = tmp_path / "programme.toml"
    path.write_text(programme(SESSIONS), encoding="utf-8")
    env = {**_env(tmp_path, cyrus, "box3", path), "KLASH_IMAP_MOVE_TO": "INBOX.Answers"}
    imap = login(cyrus, "box3")
    assert imap.create("INBOX.Answers")[0] == "OK"
    imap.logout()
    assert run_cli("replies", env=env).code == 0
    winter = _sequences(tmp_path)["winter"]
    deliver(cyrus, "box3",
            shape.google("7kq1t8@google.com", ULLA, "Ulla Nord", "ACCEPTED", 0, T0, "Someone else's"),
            shape.apple("winter@klash.test", MILJA, "Milja Kopsi", "ACCEPTED", winter, T0, "Winter"))
    result = run_cli("replies", env=env)
    assert result.code == 0, result.out + result.err
    assert "summary: 2 messages read, 1 new answers, 1 ignored" in result.out
    assert len(flags(cyrus, "box3")) == 1  # the foreign one stays where it was
    assert len(flags(cyrus, "box3", "INBOX.Answers")) == 1
