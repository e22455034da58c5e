"""`klash-sync run` reads the organiser's mailbox (a real Cyrus IMAP) every KLASH_IMAP_INTERVAL:
a decline the day before a session is mailed to the organiser once, and once only across a
restart; a mailbox that cannot be reached is a warning on /healthz, in /metrics and the log;
a kill -9 in the middle of a long read loses no answer and counts none twice.
"""

from __future__ import annotations

import html
import json
import signal
import sqlite3
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from tests.fixtures import reply_samples as shape
from tests.fixtures.answers_world import (
    ORGANISER,
    deliver,
    imap_env,
    mail_server,
    programme,
    session,
    uidvalidity,
)
from tests.fixtures.common import run_cli
from tests.fixtures.processes import start_daemon, stop, wait_for
from tests.fixtures.tcp_proxy import Relay

MILJA, ULLA = "milja@example.test", "ulla@example.test"


@pytest.fixture(scope="module")
def cyrus():
    yield from mail_server()


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:00+00:00")


def _query(tmp_path, sql: str) -> list[tuple]:
    """Read the daemon's store as another reader would, changing nothing."""
    db = sqlite3.connect(f"file:{tmp_path / 'state' / 'state.sqlite3'}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        db.close()


def _sequence(tmp_path, sid: str) -> int:
    found = _query(tmp_path, f"SELECT sequence FROM sessions WHERE id='{sid}'")
    return int(found[0][0]) if found else -1


def _health(url: str) -> dict:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def _declines(smtp) -> list:
    return [m for m in smtp.handler.messages() if m.recipients == [ORGANISER]]


def test_a_late_decline_is_mailed_once_and_a_lost_mailbox_is_a_warning(tmp_path, cyrus, smtp):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    tomorrow = now + timedelta(hours=24)
    sessions = (session("vantaa", _at(tomorrow), _at(tomorrow + timedelta(hours=2)), ["milja", "ulla"])
                + session("joensuu", _at(now + timedelta(days=10)), _at(now + timedelta(days=10, hours=2)),
                          ["milja", "ulla"]))
    path = tmp_path / "programme.toml"
    path.write_text(programme(sessions), encoding="utf-8")
    relay = Relay(cyrus.imap)
    env = {**imap_env(cyrus, "box4", port=relay.port), **smtp.env(), "KLASH_IMAP_INTERVAL": "5"}
    daemon = start_daemon(tmp_path, path, **env)
    try:
        wait_for(lambda: _sequence(tmp_path, "vantaa") >= 0, 30, "the programme published")
        vantaa, joensuu = _sequence(tmp_path, "vantaa"), _sequence(tmp_path, "joensuu")
        deliver(cyrus, "box4",
                shape.google("vantaa@klash.test", MILJA, "Milja Kopsi", "DECLINED", vantaa,
                             now - timedelta(minutes=5), "Vantaa", comment="Sairastuin"),
                shape.outlook("vantaa@klash.test", ULLA, "Ulla Nord", "ACCEPTED", vantaa,
                              now - timedelta(minutes=4), "Vantaa"),
                # ten days ahead: a decline then is no news for the coffee order
                shape.thunderbird("joensuu@klash.test", ULLA, "Ulla Nord", "DECLINED", joensuu,
                                  now - timedelta(minutes=3), "Joensuu"))
        wait_for(lambda: len(_query(tmp_path, "SELECT * FROM answers")) == 3, 30, "three answers read")
        wait_for(lambda: _declines(smtp), 30, "the decline mail")
        mail = _declines(smtp)[0].message
        assert str(mail["Subject"]).startswith("Milja Kopsi ei pääse: Vantaa ")
        body = mail.get_content()
        assert "ettei pääse tilaisuuteen Vantaa" in body
        assert "Viesti: Sairastuin" in body
        shown = json.loads(run_cli("attendance", "--json", env={
            "KLASH_PROGRAMME": str(path), "KLASH_STATE_DIR": str(tmp_path / "state")}).out)
        got = {(s["id"], m["id"]): m["answer"] for s in shown["sessions"] for m in s["mentors"]}
        assert got == {("vantaa", "milja"): "declined", ("vantaa", "ulla"): "accepted",
                       ("joensuu", "milja"): "none", ("joensuu", "ulla"): "declined"}
        health = _health(daemon.url)
        assert health["status"] == "ok", health
        assert {r["unit"]: r["ok"] for r in health["replies"]} == {"mailbox": True, "declines": True}
        with urllib.request.urlopen(f"{daemon.url}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert 'klash_replies_actions_total{kind="answers"} 3.0' in metrics
        assert 'klash_replies_actions_total{kind="decline_mail"} 1.0' in metrics
        handed = run_cli("replies", env={**env, "KLASH_PROGRAMME": str(path),
                                         "KLASH_STATE_DIR": str(tmp_path / "state")})
        assert handed.code == 0, handed.out + handed.err  # the daemon read it, on its own worker
        assert "handed over" in handed.err
        assert "summary: 0 messages read" in handed.out
        code, _ = stop(daemon)
        assert code == 0

        started = datetime.now(UTC)
        daemon = start_daemon(tmp_path, path, **env)

        def both_ran() -> bool:
            records = {r["unit"]: r for r in _health(daemon.url).get("replies", [])}
            return all(records.get(u, {}).get("last_sync") and datetime.fromisoformat(
                records[u]["last_sync"]) >= started.replace(microsecond=0) for u in ("mailbox", "declines"))

        wait_for(both_ran, 30, "both units run after the restart")
        assert len(_declines(smtp)) == 1  # never twice

        relay.close()  # the mail server is gone
        wait_for(lambda: any(w["part"] == "replies" for w in _health(daemon.url)["warnings"]), 30,
                 "a warning on /healthz")
        health = _health(daemon.url)
        warning = next(w for w in health["warnings"] if w["part"] == "replies")
        assert "cannot reach" in warning["reason"] or "connection" in warning["reason"], warning
        assert health["status"] == "ok"  # one part of the channel, not the service
        with urllib.request.urlopen(f"{daemon.url}/?lang=en", timeout=5) as response:
            page = response.read().decode()
        assert "✗ Reading answers from the mailbox: failing" in page  # the organisers' status
        assert html.escape(warning["reason"], quote=False) in page
        assert cyrus.passwords["box4"] not in daemon.log()
        assert "replies" in daemon.log()
        assert "failed" in daemon.log()
    finally:
        relay.close()
        if daemon.proc.poll() is None:
            stop(daemon)


def test_kill_9_while_reading_loses_nothing_and_counts_nothing_twice(tmp_path, cyrus):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    later = now + timedelta(days=30)
    path = tmp_path / "programme.toml"
    path.write_text(programme(session("later", _at(later), _at(later + timedelta(hours=1)), ["milja"])),
                    encoding="utf-8")
    relay = Relay(cyrus.imap, delay=0.02)  # a slow server: the read takes seconds
    env = {**imap_env(cyrus, "box5", port=relay.port), "KLASH_IMAP_INTERVAL": "5"}
    # one read of the empty mailbox publishes the programme: the answers carry its SEQUENCE
    first = run_cli("replies", env={**env, "KLASH_PROGRAMME": str(path),
                                    "KLASH_STATE_DIR": str(tmp_path / "state")})
    assert first.code == 0, first.out + first.err
    sequence = _sequence(tmp_path, "later")
    total = 120
    deliver(cyrus, "box5", *[
        shape.thunderbird("later@klash.test", MILJA, "Milja Kopsi",
                          "ACCEPTED" if i % 2 else "DECLINED", sequence, now - timedelta(minutes=total - i),
                          "Later") for i in range(total)])
    daemon = start_daemon(tmp_path, path, **env)
    try:
        count = lambda: len(_query(tmp_path, "SELECT source FROM answers"))  # noqa: E731
        wait_for(lambda: count() >= 20, 60, "the read under way")
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(timeout=10)
        at_kill = count()
        assert 20 <= at_kill < total, at_kill  # killed in the middle of the read
        daemon = start_daemon(tmp_path, path, **env)
        wait_for(lambda: count() == total, 90, "every answer read after the restart")
        validity = uidvalidity(cyrus, "box5")
        sources = [s for (s,) in _query(tmp_path, "SELECT source FROM answers")]
        assert sorted(sources) == sorted(f"email:{validity}:{uid}" for uid in range(1, total + 1))
        assert _query(tmp_path, "SELECT uidvalidity, last_uid FROM reply_cursor") == [(validity, total)]
        ran = daemon.log()
        assert "ignored" not in ran  # none of them was taken for a duplicate
    finally:
        relay.close()
        if daemon.proc.poll() is None:
            stop(daemon)


def test_with_decline_mail_off_a_late_decline_is_shown_and_mailed_to_nobody(tmp_path, cyrus, smtp):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    tomorrow = now + timedelta(hours=24)
    path = tmp_path / "programme.toml"
    path.write_text(programme(session("vantaa", _at(tomorrow), _at(tomorrow + timedelta(hours=2)),
                                      ["milja", "ulla"])), encoding="utf-8")
    env = {**imap_env(cyrus, "box6"), **smtp.env(), "KLASH_IMAP_INTERVAL": "5",
           "KLASH_DECLINE_MAIL": "false"}
    daemon = start_daemon(tmp_path, path, **env)
    try:
        wait_for(lambda: _sequence(tmp_path, "vantaa") >= 0, 30, "the programme published")
        deliver(cyrus, "box6", shape.google("vantaa@klash.test", MILJA, "Milja Kopsi", "DECLINED",
                                            _sequence(tmp_path, "vantaa"), now - timedelta(minutes=5),
                                            "Vantaa", comment="Sairastuin"))
        wait_for(lambda: len(_query(tmp_path, "SELECT * FROM answers")) == 1, 30, "the answer read")
        wait_for(lambda: "klash_replies_actions_total" in urllib.request.urlopen(
            f"{daemon.url}/metrics", timeout=5).read().decode(), 30, "a reported pass")
        time.sleep(6)  # another pass of the reader: a decline mail would have gone by now
        assert _declines(smtp) == []
    finally:
        code, _ = stop(daemon)
    assert code == 0
