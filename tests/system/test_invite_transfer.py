"""What goes over the wire follows what the SMTP server announces: `klash-sync invites --send`
as a real process, to the test SMTP server (aiosmtpd) with and without 8BITMIME and SMTPUTF8.

Without them every message is 7-bit clean (every byte of DATA below 128) and MAIL FROM
carries no parameter; a mentor whose address has non-ASCII letters cannot be sent to,
which fails for that mentor only, with the reason, while the others are sent. With them
announced, the 8-bit message goes with BODY=8BITMIME and the UTF-8 address with SMTPUTF8.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.fixtures.common import run_cli
from tests.fixtures.invite_helpers import ADDRESSES, header, read, session, timed
from tests.fixtures.smtp_server import SmtpServer

Y = datetime.now(UTC).year + 1
UTF8_ADDRESS = "milja.köpsi@example.test"
ULLA = ADDRESSES["ulla-nord"]


def programme() -> str:
    return (header(milja_email=UTF8_ADDRESS)
            + session("summer", timed(f"{Y}-07-02", "10:00", "12:00"), ["milja-kopsi", "ulla-nord"],
                      title="Kesän työpaja – ääkköset 🎉", location="Järvenpää")
            + session("winter", timed(f"{Y}-01-15", "10:00", "11:00"), ["ulla-nord"],
                      title="Talvi"))


def params(received) -> list[str]:
    """The MAIL FROM parameters that say how the message travels (SIZE aside)."""
    return sorted(o for o in received.options if not o.startswith("SIZE="))


@pytest.fixture
def server(request, tmp_path):
    eight_bit, smtputf8 = request.param
    smtp = SmtpServer(tmp_path / "smtp", eight_bit=eight_bit, smtputf8=smtputf8)
    smtp.start()
    yield smtp
    smtp.stop()


def send(tmp_path, smtp):
    path = tmp_path / "programme.toml"
    path.write_text(programme(), encoding="utf-8")
    env = {"KLASH_PROGRAMME": str(path), "KLASH_STATE_DIR": str(tmp_path / "state"), **smtp.env()}
    return run_cli("invites", "--send", env=env)


@pytest.mark.parametrize("server", [(False, False)], indirect=True)
def test_without_8bitmime_and_smtputf8_all_is_7_bit_and_the_utf8_address_fails_alone(tmp_path, server):
    result = send(tmp_path, server)
    assert result.code == 1, result.out + result.err
    assert "Traceback" not in result.err
    failed = [line for line in result.out.splitlines() if line.startswith("FAILED")]
    assert failed == ["FAILED REQUEST summer to milja-kopsi: the mail server does not announce "
                      "SMTPUTF8, which an address with non-ASCII letters needs"]
    got = server.handler.messages()
    assert sorted(m.recipients[0] for m in got) == [ULLA, ULLA]  # the others are sent
    for m in got:
        assert params(m) == []  # no BODY=8BITMIME, no SMTPUTF8: neither was announced
        assert max(m.raw) < 128, "an 8-bit byte went to a server without 8BITMIME"
        invite = read(m)
        summer = m.message.get_body(("plain",))
        assert summer is not None
        assert invite.method == "REQUEST"
    texts = [m.message.get_body(("plain",)).get_content() for m in got]
    assert any("Kesän työpaja – ääkköset 🎉" in t and "Järvenpää" in t for t in texts)
    again = send(tmp_path, server)  # shown again to the operator, not sent anywhere
    assert "SMTPUTF8" in again.out
    assert len(server.handler.messages()) == 2


@pytest.mark.parametrize("server", [(True, True)], indirect=True)
def test_with_8bitmime_and_smtputf8_announced_they_are_used(tmp_path, server):
    result = send(tmp_path, server)
    assert result.code == 0, result.out + result.err
    got = {(m.recipients[0], read(m).uid.split("@")[0]): m for m in server.handler.messages()}
    assert set(got) == {(UTF8_ADDRESS, "summer"), (ULLA, "summer"), (ULLA, "winter")}
    milja = got[(UTF8_ADDRESS, "summer")]
    assert params(milja) == ["BODY=8BITMIME", "SMTPUTF8"]
    assert f"<{UTF8_ADDRESS}>".encode() in milja.raw.split(b"\r\n\r\n", 1)[0]  # RFC 6532 header
    assert str(milja.message["To"]) == f"Milja Köpsi <{UTF8_ADDRESS}>"
    for key in ((ULLA, "summer"), (ULLA, "winter")):
        assert params(got[key]) == ["BODY=8BITMIME"]
        assert max(got[key].raw.split(b"\r\n\r\n", 1)[1]) >= 128  # 8-bit text, as announced
