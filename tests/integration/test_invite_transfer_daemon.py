"""A mentor whose address has non-ASCII letters, and a mail server that does not announce
SMTPUTF8, in the running service on a fake clock: that mentor's message fails once, for
good, and is shown per mentor (/healthz, /metrics, the status page) while the others'
messages go out; hours later it has not been tried again.
"""

from __future__ import annotations

import json
import logging

from tests.fixtures.common import fetch
from tests.fixtures.daemon_rig import settle
from tests.fixtures.invite_helpers import ADDRESSES, header, session, start_invite_daemon, timed
from tests.fixtures.smtp_server import SmtpServer

UTF8_ADDRESS = "milja.köpsi@example.test"
DELAY = 60


def test_a_utf8_address_without_smtputf8_fails_once_and_is_shown_while_others_are_sent(
        tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    smtp = SmtpServer(tmp_path / "smtp", eight_bit=False)
    smtp.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp.cert))
    text = (header(milja_email=UTF8_ADDRESS)
            + session("first", timed("2027-07-02", "10:00", "12:00"), ["milja-kopsi", "ulla-nord"]))
    daemon, clock, _ = start_invite_daemon(tmp_path, smtp, text, delay=DELAY)
    try:
        clock.advance(DELAY + 1)
        settle(daemon)
        got = smtp.handler.messages()
        assert [m.recipients for m in got] == [[ADDRESSES["ulla-nord"]]]
        assert max(got[0].raw) < 128
        url = f"http://127.0.0.1:{daemon.server.effective_port}"
        body = json.loads(fetch(url, "/healthz").body)
        line = next(x for x in body["invitations"] if x["mentor"] == "milja-kopsi")
        assert (line["failed"], line["sent"], line["pending"]) == (1, 0, 0)
        assert "SMTPUTF8" in line["error"]
        assert [w["mentor"] for w in body["warnings"]] == ["milja-kopsi"]
        assert "klash_invitations_failing 1.0" in fetch(url, "/metrics").body.decode()
        assert "SMTPUTF8" in fetch(url, "/").body.decode()
        for _ in range(5):  # an hour and more: not tried again with the same content
            clock.advance(900)
            settle(daemon)
        tries = [r for r in caplog.records if "to milja-kopsi" in r.getMessage()
                 and "SMTPUTF8" in r.getMessage()]
        assert len(tries) == 1, [r.getMessage() for r in tries]
        assert len(smtp.handler.messages()) == 1
    finally:
        daemon.stop()
        smtp.stop()
