"""Invitations from the running service, stepped on a fake clock, to a real SMTP server.

The clock drives the quiet period and the retry backoff; the SMTP traffic is real and
waited for (never timed) with ``settle``. Covered: three quick edits make one message;
a 550 for one mentor, a 421 for everyone, and a server that is down leave the others'
messages going out, show the failure on /healthz with the mentor's id, lose nothing,
and send nothing twice once the server answers again. The SMTP password is in no log
line, page or metric.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from klash_sync.clock import FakeClock
from klash_sync.service.daemon import Daemon
from tests.fixtures.common import fetch
from tests.fixtures.daemon_rig import settle
from tests.fixtures.invite_helpers import ADDRESSES, header, read, session, start_invite_daemon, timed
from tests.fixtures.smtp_server import PASSWORD

MILJA, ULLA = ADDRESSES["milja-kopsi"], ADDRESSES["ulla-nord"]
DELAY = 120


def programme(first: str = "10:00", *, milja_email: str = MILJA) -> str:
    return (header(milja_email=milja_email)
            + session("first", timed("2027-07-02", first, "23:00"), ["milja-kopsi", "ulla-nord"])
            + session("second", timed("2027-01-15", "10:00", "11:00"), ["ulla-nord"]))


@pytest.fixture
def rig(tmp_path: Path, smtp, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp.cert))
    daemon, clock, path = start_invite_daemon(tmp_path, smtp, programme(), delay=DELAY)
    yield daemon, clock, smtp, path
    daemon.stop()


def edit(daemon: Daemon, path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    assert daemon.reload()


def after(daemon: Daemon, clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds)
    settle(daemon)


def daemon_url(daemon: Daemon) -> str:
    return f"http://127.0.0.1:{daemon.server.effective_port}"


def health(daemon: Daemon) -> tuple[int, dict]:
    got = fetch(daemon_url(daemon), "/healthz")
    return got.status, json.loads(got.body)


def delivered(smtp) -> list:
    return [read(m) for m in smtp.handler.messages()]


def test_quiet_period_three_edits_make_one_message(rig):
    daemon, clock, smtp, path = rig
    after(daemon, clock, DELAY - 10)
    assert smtp.handler.messages() == []  # the programme has not been quiet long enough
    after(daemon, clock, 11)
    first = delivered(smtp)
    assert sorted((i.to, i.uid) for i in first) == [
        (MILJA, "first@klash.test"), (ULLA, "first@klash.test"), (ULLA, "second@klash.test")]

    for start in ("11:00", "12:00", "13:00"):  # three edits, 30 s apart
        edit(daemon, path, programme(start))
        after(daemon, clock, 30)
    assert len(smtp.handler.messages()) == 3
    after(daemon, clock, DELAY)
    new = delivered(smtp)[3:]
    assert sorted(i.to for i in new) == [MILJA, ULLA]  # one message each, not three
    before = {i.to: i.sequence for i in first if i.uid == "first@klash.test"}
    for inv in new:
        assert inv.method == "REQUEST"
        assert inv.start == "2027-07-02T10:00:00.000Z"  # the last edit's 13:00 Helsinki time
        assert inv.sequence > before[inv.to]
    status, body = health(daemon)
    assert status == 200
    assert {(x["mentor"], x["sent"], x["pending"], x["failed"]) for x in body["invitations"]} == {
        ("milja-kopsi", 1, 0, 0), ("ulla-nord", 2, 0, 0)}


def test_refusals_and_outages_lose_nothing_and_send_nothing_twice(rig, caplog):
    caplog.set_level(logging.DEBUG)
    daemon, clock, smtp, path = rig

    # 550 for one mentor: the others' messages go out, the failure is on /healthz
    smtp.handler.refuse[MILJA] = "550 5.1.1 <milja@example.test>: Recipient address rejected"
    after(daemon, clock, DELAY + 1)
    assert sorted(i.to for i in delivered(smtp)) == [ULLA, ULLA]
    status, body = health(daemon)
    assert status == 200, body["problems"]  # one bounced address is not the service's failure
    [warning] = body["warnings"]
    assert (warning["part"], warning["mentor"], warning["reason"]) == (
        "invitations", "milja-kopsi", "550 5.1.1 <(address)>: Recipient address rejected")  # redacted
    assert warning["since"] is not None
    metrics = fetch(daemon_url(daemon), "/metrics").body.decode()
    assert "klash_healthy 1.0" in metrics
    assert "klash_invitations_failing 1.0" in metrics
    assert "550 5.1.1" in fetch(daemon_url(daemon), "/").body.decode()  # on the status page
    line = next(x for x in body["invitations"] if x["mentor"] == "milja-kopsi")
    assert (line["failed"], line["sent"]) == (1, 0)
    assert line["error"].startswith("550 5.1.1")
    after(daemon, clock, 3600)
    assert len(smtp.handler.messages()) == 2  # a 5xx is not retried with the same content

    # the organiser fixes the address: the message goes out once, to the new address
    del smtp.handler.refuse[MILJA]
    edit(daemon, path, programme(milja_email="milja.kopsi@example.test"))
    after(daemon, clock, DELAY + 1)
    assert [i.to for i in delivered(smtp)[2:]] == ["milja.kopsi@example.test"]
    assert health(daemon)[0] == 200

    # 421 for everyone: the change stays pending with the answer, then goes out once
    smtp.handler.answer_all = "421 4.3.2 Service not available, try again later"
    edit(daemon, path, programme("09:00", milja_email="milja.kopsi@example.test"))
    after(daemon, clock, DELAY + 1)
    assert len(smtp.handler.messages()) == 3
    _, body = health(daemon)
    pending = {x["mentor"]: x for x in body["invitations"]}
    assert pending["ulla-nord"]["pending"] == 1
    assert pending["ulla-nord"]["error"].startswith("421 4.3.2")
    smtp.handler.answer_all = None
    after(daemon, clock, 61)  # the backoff (KLASH_RETRY_MAX caps it at 60 s)
    assert sorted(i.to for i in delivered(smtp)[3:]) == ["milja.kopsi@example.test", ULLA]

    # the server is down: same again, and on its return exactly one message each
    smtp.stop()
    edit(daemon, path, programme("08:00", milja_email="milja.kopsi@example.test"))
    after(daemon, clock, DELAY + 1)
    _, body = health(daemon)
    down = {x["mentor"]: x for x in body["invitations"]}
    assert "cannot reach" in down["milja-kopsi"]["error"]
    assert down["milja-kopsi"]["pending"] == 1
    after(daemon, clock, 61)  # still down: tried again, still pending
    smtp.start()
    after(daemon, clock, 61)
    got = delivered(smtp)
    assert sorted(i.to for i in got[5:]) == ["milja.kopsi@example.test", ULLA]
    keys = [(i.to, i.uid, i.sequence) for i in got]
    assert len(keys) == len(set(keys)), "a message was delivered twice"
    for mailbox in ("milja.kopsi@example.test", ULLA):
        sequences = [i.sequence for i in got if i.to == mailbox and i.uid == "first@klash.test"]
        assert sequences == sorted(sequences)
    assert health(daemon)[0] == 200

    # the password is in no log line, page or metric
    port = daemon.server.effective_port
    pages = b"".join(fetch(f"http://127.0.0.1:{port}", p).body for p in ("/", "/healthz", "/metrics"))
    assert PASSWORD.encode() not in pages
    assert PASSWORD not in caplog.text
    metrics = fetch(f"http://127.0.0.1:{port}", "/metrics").body.decode()
    assert 'klash_invitations{mentor="ulla-nord",state="sent"} 2.0' in metrics
