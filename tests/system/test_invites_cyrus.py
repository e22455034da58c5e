"""A calendar system files our invitations by itself, moves them on an update, and removes
them on a cancellation: Cyrus IMAP with its iMIP Sieve processing (see cyrus_server.py).

`klash-sync invites --send` sends to the SMTP server as in production; what that server
accepted is handed on over LMTP to Cyrus, as an organisation's mail server hands mail
to its mailbox server. What counts is what Cyrus then holds in each mentor's calendar,
read back over CalDAV.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tests.fixtures.common import run_cli
from tests.fixtures.cyrus_server import DOMAIN
from tests.fixtures.invite_helpers import ORGANISER_EMAIL, session, timed

Y = datetime.now(UTC).year + 1


def programme(start: str, *, status: str = "confirmed", mentors: tuple[str, ...] = ("milja", "ulla")) -> str:
    head = f"""
[programme]
name = "Testiohjelma"
uid_domain = "klash.test"
organiser = "Kuntaliitto"
organiser_email = "{ORGANISER_EMAIL}"
"""
    for user in ("milja", "ulla"):
        head += (f'\n[[mentors]]\nid = "{user}"\nname = "{user.title()}"\n'
                 f'email = "{user}@{DOMAIN}"\ninvite = true\n')
    return (head + session("kickoff", timed(f"{Y}-06-10", start, "23:00"), list(mentors), status=status)
            + session("winter", timed(f"{Y}-01-20", "09:00", "10:00"), ["milja"]))


def test_cyrus_files_moves_and_cancels_our_invitations(tmp_path, smtp, cyrus):
    path = tmp_path / "programme.toml"
    env = {**smtp.env(), "KLASH_PROGRAMME": str(path), "KLASH_STATE_DIR": str(tmp_path / "state")}
    relayed = 0

    def send_and_relay() -> None:
        nonlocal relayed
        result = run_cli("invites", "--send", env=env)
        assert result.code == 0, result.out + result.err
        for message in smtp.handler.messages()[relayed:]:
            cyrus.deliver(message.raw, message.sender, message.recipients[0])
        relayed = len(smtp.handler.messages())

    def instant(event) -> str:
        return event.decoded("DTSTART").astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")

    path.write_text(programme("10:00"), encoding="utf-8")
    send_and_relay()
    milja, ulla = cyrus.events("milja"), cyrus.events("ulla")
    assert set(milja) == {"kickoff@klash.test", "winter@klash.test"}
    assert set(ulla) == {"kickoff@klash.test"}
    filed = milja["kickoff@klash.test"]
    assert instant(filed) == f"{Y}-06-10T07:00Z"  # 10:00 Helsinki summer time
    assert instant(milja["winter@klash.test"]) == f"{Y}-01-20T07:00Z"  # 09:00 winter time
    assert str(filed["ORGANIZER"]) == f"mailto:{ORGANISER_EMAIL}"
    first_sequence = int(filed["SEQUENCE"])

    path.write_text(programme("14:00"), encoding="utf-8")  # rescheduled: the update moves it
    send_and_relay()
    for user in ("milja", "ulla"):
        moved = cyrus.events(user)["kickoff@klash.test"]
        assert instant(moved) == f"{Y}-06-10T11:00Z"
        assert int(moved["SEQUENCE"]) == first_sequence + 1

    path.write_text(programme("14:00", mentors=("milja",)), encoding="utf-8")  # Ulla taken off
    send_and_relay()
    assert "kickoff@klash.test" not in cyrus.events("ulla")
    assert instant(cyrus.events("milja")["kickoff@klash.test"]) == f"{Y}-06-10T11:00Z"

    path.write_text(programme("14:00", status="cancelled", mentors=("milja",)), encoding="utf-8")
    send_and_relay()  # the session is called off: the cancellation takes it away
    assert set(cyrus.events("milja")) == {"winter@klash.test"}
