"""The e-mail invitation channel's contract, the same tests on every receiver.

Parametrised (``mailbox``, in conftest.py) over the test SMTP server, whose accepted
messages are taken apart and filed as RFC 6047 says a client files them, and over
Cyrus IMAP, whose own iMIP processing files them into each mentor's calendar. What
the channel promises: each invited mentor gets each of their sessions at its time,
from the organiser; a rescheduled session moves, with a higher SEQUENCE; a mentor
taken off a session, and a cancelled session, are removed from the calendar.
`klash-sync invites --send` sends, as an organiser runs it.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from tests.fixtures.common import run_cli
from tests.fixtures.cyrus_server import DOMAIN
from tests.fixtures.invite_helpers import ORGANISER_EMAIL, session, timed

Y = datetime.now(UTC).year + 1
_prefixes = itertools.count(1)


class Channel:
    """A programme of two invited mentors and the CLI that sends its invitations."""

    def __init__(self, tmp_path, smtp, mailbox) -> None:
        self.path = tmp_path / "programme.toml"
        self.env = {**smtp.env(), "KLASH_PROGRAMME": str(self.path),
                    "KLASH_STATE_DIR": str(tmp_path / "state")}
        self.mailbox = mailbox
        # sessions of their own: the Cyrus calendars are shared by the module's tests
        self.prefix = f"c{next(_prefixes)}-{mailbox.kind}"

    def uid(self, name: str) -> str:
        return f"{self.prefix}-{name}@klash.test"

    def send(self, start: str, *, status: str = "confirmed",
             mentors: tuple[str, ...] = ("milja", "ulla")) -> None:
        head = (f'\n[programme]\nname = "Testiohjelma"\nuid_domain = "klash.test"\n'
                f'organiser = "Kuntaliitto"\norganiser_email = "{ORGANISER_EMAIL}"\n')
        for user in ("milja", "ulla"):
            head += (f'\n[[mentors]]\nid = "{user}"\nname = "{user.title()}"\n'
                     f'email = "{user}@{DOMAIN}"\ninvite = true\n')
        self.path.write_text(
            head + session(f"{self.prefix}-kickoff", timed(f"{Y}-06-10", start, "23:00"), list(mentors),
                           status=status)
            + session(f"{self.prefix}-winter", timed(f"{Y}-01-20", "09:00", "10:00"), ["milja"]),
            encoding="utf-8")
        result = run_cli("invites", "--send", env=self.env)
        assert result.code == 0, result.out + result.err
        self.mailbox.take()

    def events(self, user: str) -> dict:
        """This test's events in the user's calendar."""
        return {uid: e for uid, e in self.mailbox.events(user).items() if uid.startswith(self.prefix)}


def test_each_invited_mentor_gets_each_of_their_sessions_at_its_time(tmp_path, smtp, mailbox):
    channel = Channel(tmp_path, smtp, mailbox)
    channel.send("10:00")
    milja, ulla = channel.events("milja"), channel.events("ulla")
    assert set(milja) == {channel.uid("kickoff"), channel.uid("winter")}
    assert set(ulla) == {channel.uid("kickoff")}
    assert milja[channel.uid("kickoff")].start == f"{Y}-06-10T07:00Z"  # 10:00 Helsinki summer time
    assert milja[channel.uid("winter")].start == f"{Y}-01-20T07:00Z"  # 09:00 winter time
    for event in (*milja.values(), *ulla.values()):
        assert event.organizer == f"mailto:{ORGANISER_EMAIL}"


def test_a_rescheduled_session_moves_with_a_higher_sequence(tmp_path, smtp, mailbox):
    channel = Channel(tmp_path, smtp, mailbox)
    channel.send("10:00")
    first = channel.events("milja")[channel.uid("kickoff")].sequence
    channel.send("14:00")
    for user in ("milja", "ulla"):
        moved = channel.events(user)[channel.uid("kickoff")]
        assert moved.start == f"{Y}-06-10T11:00Z"
        assert moved.sequence == first + 1
    assert channel.events("milja")[channel.uid("winter")].start == f"{Y}-01-20T07:00Z"  # untouched


def test_a_mentor_taken_off_and_a_cancelled_session_are_removed(tmp_path, smtp, mailbox):
    channel = Channel(tmp_path, smtp, mailbox)
    channel.send("14:00")
    assert set(channel.events("ulla")) == {channel.uid("kickoff")}
    channel.send("14:00", mentors=("milja",))  # Ulla taken off
    assert channel.events("ulla") == {}
    assert channel.events("milja")[channel.uid("kickoff")].start == f"{Y}-06-10T11:00Z"
    channel.send("14:00", status="cancelled", mentors=("milja",))  # the session is called off
    assert set(channel.events("milja")) == {channel.uid("winter")}
