"""Answers in the state store and `klash-sync attendance`: what organisers read.

The store keeps every answer once per source, the latest by its own time wins across
channels, the mail reader's position moves only with the answers read up to it, and
`attendance` (a real process) shows them, text and JSON, and writes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from klash_sync.programme.load import load
from klash_sync.service.publish import publish
from klash_sync.state.store import Answer, Store
from tests.fixtures.common import programme_text, run_cli

T0 = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)

PROGRAMME = programme_text(
    """
id = "vantaa-1"
title = "Vantaan tilaisuus"
start = 2026-10-08T09:00:00
end = 2026-10-08T11:00:00
mentors = ["milja-kopsi", "ulla-nord"]
""",
    """
id = "joensuu-1"
title = "Joensuun päivä"
date = 2026-10-01
mentors = ["ulla-nord"]
""",
)


def _answer(mentor: str, answer: str, via: str, at: datetime, source: str, seq: int = 1,
            session: str = "vantaa-1", comment: str = "") -> Answer:
    return Answer(mentor, session, answer, via, at, seq, source, comment)


def test_each_source_counts_once_and_the_latest_own_time_wins(tmp_path):
    store = Store(tmp_path / "state.sqlite3")
    web = _answer("milja-kopsi", "accepted", "web", T0 + timedelta(hours=1), "web:1")
    mail = _answer("milja-kopsi", "declined", "email", T0, "email:7:42", comment="Sairas")
    assert store.record_answers([web], T0) == [web]
    # the e-mail was written before the click but read after it: the click still stands
    assert store.record_answers([mail, mail], T0 + timedelta(hours=2)) == [mail]
    assert store.record_answers([web, mail], T0 + timedelta(hours=3)) == []  # read again: nothing
    assert store.latest_answers() == {("milja-kopsi", "vantaa-1"): web}
    later = _answer("milja-kopsi", "tentative", "caldav", T0 + timedelta(hours=4), "caldav:c:e1")
    store.record_answers([later], T0 + timedelta(hours=5))
    assert store.latest_answers()[("milja-kopsi", "vantaa-1")] == later
    assert [a.source for a in store.all_answers()] == ["email:7:42", "web:1", "caldav:c:e1"]
    store.close()


def test_the_mail_position_moves_with_its_answers_or_not_at_all(tmp_path):
    store = Store(tmp_path / "state.sqlite3")
    box = "imap://organiser@mail.test/INBOX"
    store.record_answers([_answer("ulla-nord", "accepted", "email", T0, "email:7:1")], T0,
                         cursor=(box, 7, 1))
    assert store.reply_cursor(box) == (7, 1)
    bad = _answer("ulla-nord", "maybe-later", "email", T0, "email:7:2")
    good = _answer("ulla-nord", "declined", "email", T0, "email:7:3")
    with pytest.raises(ValueError, match="not an answer"):
        store.record_answers([good, bad], T0, cursor=(box, 7, 3))
    assert store.reply_cursor(box) == (7, 1)  # one transaction: neither moved
    assert [a.source for a in store.all_answers()] == ["email:7:1"]
    store.close()


def _state_with_answers(tmp_path):
    path = tmp_path / "programme.toml"
    path.write_text(PROGRAMME, encoding="utf-8")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    store = Store(state / "state.sqlite3")
    snapshot = publish(load(path), store, now=T0, base_url=None)
    seq = snapshot.revisions["vantaa-1"].sequence
    store.record_answers([
        _answer("milja-kopsi", "declined", "email", T0 + timedelta(minutes=5), "email:7:9", seq,
                comment="Olen lomalla"),
        _answer("ulla-nord", "accepted", "web", T0 + timedelta(minutes=6), "web:2", seq - 1),
        _answer("ulla-nord", "tentative", "caldav", T0 + timedelta(minutes=7), "caldav:x:1", 0,
                session="gone-session"),
    ], T0)
    store.close()
    return path, state, seq


def test_attendance_shows_every_session_and_answer_and_writes_nothing(tmp_path):
    programme, state, seq = _state_with_answers(tmp_path)
    env = {"KLASH_PROGRAMME": str(programme), "KLASH_STATE_DIR": str(state)}
    before = {p.name: p.read_bytes() for p in state.iterdir()}
    result = run_cli("attendance", "--json", env=env)
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc == {"sessions": [
        {"id": "joensuu-1", "title": "Joensuun päivä", "start": "2026-10-01", "mentors": [
            {"id": "ulla-nord", "name": "Ulla Nord", "answer": "none", "via": None, "at": None,
             "comment": "", "for_sequence": None}]},
        {"id": "vantaa-1", "title": "Vantaan tilaisuus", "start": "2026-10-08T09:00:00+03:00",
         "mentors": [
             {"id": "milja-kopsi", "name": "Milja Köpsi", "answer": "declined", "via": "email",
              "at": "2026-09-01T12:05:00+00:00", "comment": "Olen lomalla", "for_sequence": seq},
             {"id": "ulla-nord", "name": "Ulla Nord", "answer": "accepted", "via": "web",
              "at": "2026-09-01T12:06:00+00:00", "comment": "", "for_sequence": seq - 1}]}]}
    text = run_cli("attendance", "--session", "vantaa-1", env=env)
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert lines[0] == "2026-10-08 09:00  Vantaan tilaisuus (vantaa-1)"
    assert lines[1] == "  1 coming, 0 maybe, 1 not coming, 0 no answer"
    assert "Milja Köpsi  not coming  by e-mail, 2026-09-01 12:05 UTC  “Olen lomalla”" in lines[2]
    assert lines[3].endswith("on the page, 2026-09-01 12:06 UTC  "
                             f"(to an earlier version, SEQUENCE {seq - 1})")
    assert "joensuu" not in text.out
    assert "gone-session" not in result.out
    assert {p.name: p.read_bytes() for p in state.iterdir()} == before
    wrong = run_cli("attendance", "--session", "vantaa-2", env=env)
    assert wrong.code == 2
    assert "no session 'vantaa-2'" in wrong.err
    assert "Traceback" not in wrong.err
