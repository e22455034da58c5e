"""An SMTP password (or login) with non-ASCII characters logs in, sent as UTF-8.

smtplib's own ``login`` encodes with ASCII, so KLASH_SMTP_PASSWORD="sähkö-Äänestys"
crashed every send, for every mentor (issue 18). Tested against the real aiosmtpd
server (STARTTLS, AUTH required), offering PLAIN and LOGIN, then LOGIN alone; and as
an operator meets it, with ``invites --send`` as a process.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from klash_sync.deliver.invite.smtp import Transport, smtp_config
from klash_sync.settings import Settings
from tests.fixtures.common import run_cli
from tests.fixtures.invite_helpers import ADDRESSES, ORGANISER_EMAIL, header, session
from tests.fixtures.smtp_server import USERNAME, SmtpServer

PASSWORD = "sähkö-Äänestys-€-🔑"


@pytest.fixture(params=[(), ("PLAIN",)], ids=["plain-and-login", "login-only"])
def server(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    smtp = SmtpServer(tmp_path / "smtp", password=PASSWORD, exclude=request.param)
    smtp.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp.cert))  # trust the test server's certificate
    yield smtp
    smtp.stop()


def _transport(server: SmtpServer, password: str) -> Transport:
    settings = Settings(smtp_url=server.url, smtp_username=USERNAME, smtp_password=password,
                        request_timeout=10, _env_file=None)  # type: ignore[call-arg]
    config = smtp_config(settings)
    assert config is not None
    return Transport(config)


def test_a_non_ascii_password_logs_in_and_the_message_is_delivered(server):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = ORGANISER_EMAIL, ADDRESSES["milja-kopsi"], "Kutsu"
    msg.set_content("Tervetuloa")
    with _transport(server, PASSWORD) as transport:
        outcome = transport.send(msg, ORGANISER_EMAIL, ADDRESSES["milja-kopsi"])
    assert outcome.ok, outcome.answer
    [received] = server.handler.messages()
    assert received.recipients == [ADDRESSES["milja-kopsi"]]


def test_a_wrong_non_ascii_password_is_a_refused_login_on_one_line(server):
    with _transport(server, "sähkö-väärin") as transport:
        outcome = transport.connect()
    assert not outcome.ok
    assert outcome.temporary
    assert outcome.answer.startswith("login refused: 535"), outcome.answer
    assert "\n" not in outcome.answer
    assert "sähkö" not in outcome.answer


def test_invites_send_with_a_non_ascii_password_in_the_environment(tmp_path, server):
    year = datetime.now(UTC).year + 1
    path = tmp_path / "programme.toml"
    path.write_text(header() + session("kesa", f"date = {year}-07-02", ["milja-kopsi"]),
                    encoding="utf-8")
    env = {"KLASH_PROGRAMME": str(path), "KLASH_STATE_DIR": str(tmp_path / "state"), **server.env()}
    assert env["KLASH_SMTP_PASSWORD"] == PASSWORD
    result = run_cli("invites", "--send", env=env)
    assert result.code == 0, result.out + result.err
    assert "Traceback" not in result.err
    assert PASSWORD not in result.out + result.err
    assert [m.recipients for m in server.handler.messages()] == [[ADDRESSES["milja-kopsi"]]]
