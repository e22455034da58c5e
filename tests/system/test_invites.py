"""E-mail invitations end to end: `klash-sync invites --send` as a real process, a real SMTP
server (aiosmtpd with STARTTLS and AUTH) on a loopback port, every message read back with
the email package and ical.js.

Sessions are placed in the coming years, because the CLI runs on the real clock and a
session that has ended is never mailed. SEQUENCE is asserted only relative to the
previous message (the store decides where a session starts).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.fixtures.common import run_cli
from tests.fixtures.invite_helpers import ADDRESSES, ORGANISER_EMAIL, header, read, session, timed
from tests.fixtures.smtp_server import PASSWORD

Y = datetime.now(UTC).year + 1
MILJA, ULLA, PEKKA = ADDRESSES["milja-kopsi"], ADDRESSES["ulla-nord"], ADDRESSES["pekka-puu"]


def sessions(**changes: str) -> dict[str, str]:
    found = {
        "summer": session("summer", timed(f"{Y}-07-02", "10:00", "12:00"),
                          ["milja-kopsi", "ulla-nord", "pekka-puu"]),
        "winter": session("winter", timed(f"{Y}-01-15", "10:00", "11:30"), ["milja-kopsi", "ulla-nord"]),
        "allday": session("allday", f"date = {Y}-03-10", ["ulla-nord"]),
        "old": session("old", timed("2019-09-24", "10:00", "12:00"), ["milja-kopsi", "ulla-nord"]),
        "calledoff": session("calledoff", f"date = {Y}-05-05", ["milja-kopsi"], status="cancelled"),
    }
    found.update(changes)
    return {k: v for k, v in found.items() if v}


class Rig:
    def __init__(self, tmp_path: Path, smtp) -> None:
        self.path = tmp_path / "programme.toml"
        self.state = tmp_path / "state"
        self.smtp = smtp
        self.seen = 0

    def write(self, parts: dict[str, str], head: str | None = None) -> None:
        self.path.write_text((head or header()) + "".join(parts.values()), encoding="utf-8")

    def run(self, *extra: str, send: bool = True):
        env = {"KLASH_PROGRAMME": str(self.path), "KLASH_STATE_DIR": str(self.state), **self.smtp.env()}
        return run_cli("-v", "invites", *(["--send"] if send else []), *extra, env=env)

    def new(self) -> list:
        """The messages received since the last call, read back."""
        got = self.smtp.handler.messages()[self.seen:]
        self.seen += len(got)
        return [read(m) for m in got]


def by_recipient(invites: list) -> dict[tuple[str, str], object]:
    return {(i.to, i.uid.split("@")[0]): i for i in invites}


def test_first_second_reschedule_takeoff_cancel_remove_and_ended(tmp_path, smtp):
    rig = Rig(tmp_path, smtp)
    rig.write(sessions())

    preview = rig.run(send=False)
    assert preview.code == 0, preview.err
    assert "REQUEST" in preview.out
    assert "summer" in preview.out
    assert smtp.handler.messages() == []  # the preview sends nothing, but on a first run
    assert "as the current revision; nothing sent" in preview.out  # it records the programme
    again = rig.run(send=False)
    # the same list again, to the SEQUENCE: recorded, the numbers are fixed
    # (test_invites_preview.py compares the messages with what is then sent)
    assert "recorded the edit" not in again.out
    assert again.out == preview.out.split("\n", 1)[1]

    first = rig.run()
    assert first.code == 0, first.out + first.err
    got = by_recipient(rig.new())
    # one REQUEST per (invited mentor, upcoming session); nothing for the 2019 session, the
    # one cancelled before anyone was told, or the mentor without invite = true
    assert set(got) == {(MILJA, "summer"), (ULLA, "summer"), (MILJA, "winter"), (ULLA, "winter"),
                        (ULLA, "allday")}
    assert all(i.method == "REQUEST" for i in got.values())
    assert all(i.status == "CONFIRMED" for i in got.values())
    summer = got[(MILJA, "summer")]
    assert summer.uid == "summer@klash.test"
    assert summer.organizer == {"value": f"mailto:{ORGANISER_EMAIL}", "cn": "Kuntaliitto"}
    assert [(a["value"], a["cn"], a["role"], a["partstat"], a["rsvp"]) for a in summer.attendees] == [
        (f"mailto:{MILJA}", "Milja Köpsi", "REQ-PARTICIPANT", "NEEDS-ACTION", "TRUE"),
        (f"mailto:{ULLA}", "Ulla Nord", "REQ-PARTICIPANT", "NEEDS-ACTION", "TRUE"),
        (f"mailto:{PEKKA}", "Pekka Puu", "REQ-PARTICIPANT", "NEEDS-ACTION", "TRUE"),
    ]
    # Helsinki summer time is UTC+3, winter time UTC+2: the instants a client files
    assert (summer.start, summer.end) == (f"{Y}-07-02T07:00:00.000Z", f"{Y}-07-02T09:00:00.000Z")
    winter = got[(ULLA, "winter")]
    assert (winter.start, winter.end) == (f"{Y}-01-15T08:00:00.000Z", f"{Y}-01-15T09:30:00.000Z")
    assert (got[(ULLA, "allday")].start, got[(ULLA, "allday")].end) == (f"{Y}-03-10", f"{Y}-03-11")
    assert summer.message_id == f"<summer.milja-kopsi.{summer.sequence}@klash.test>"
    assert "Aika:" in summer.text
    assert "Helsingin aikaa" in summer.text
    assert "10.00–12.00" in summer.text
    assert "Pekka Puu" in summer.text

    second = rig.run()
    assert second.code == 0
    assert rig.new() == []  # nothing changed: nothing sent

    # a reschedule: one REQUEST, SEQUENCE one higher, to that session's invited mentors only
    rig.write(sessions(summer=session("summer", timed(f"{Y}-07-02", "13:00", "15:00"),
                                      ["milja-kopsi", "ulla-nord", "pekka-puu"])))
    assert rig.run().code == 0
    moved = by_recipient(rig.new())
    assert set(moved) == {(MILJA, "summer"), (ULLA, "summer")}
    for key, inv in moved.items():
        assert inv.method == "REQUEST"
        assert inv.sequence == got[key].sequence + 1
        assert inv.start == f"{Y}-07-02T10:00:00.000Z"

    # taking a mentor off a session: CANCEL to that mentor only
    rig.write(sessions(
        summer=session("summer", timed(f"{Y}-07-02", "13:00", "15:00"),
                       ["milja-kopsi", "ulla-nord", "pekka-puu"]),
        winter=session("winter", timed(f"{Y}-01-15", "10:00", "11:30"), ["milja-kopsi"])))
    assert rig.run().code == 0
    off = rig.new()
    assert [(i.to, i.method, i.uid) for i in off] == [(ULLA, "CANCEL", "winter@klash.test")]
    assert off[0].sequence > got[(ULLA, "winter")].sequence
    assert off[0].status is None  # uninvited from a session that goes on (RFC 5546 3.2.5)
    assert [a["value"] for a in off[0].attendees] == [f"mailto:{ULLA}"]

    # a cancelled session: CANCEL to its mentors; a removed one: CANCEL to each of its mentors
    rig.write(sessions(
        summer=None,
        winter=session("winter", timed(f"{Y}-01-15", "10:00", "11:30"), ["milja-kopsi"]),
        allday=session("allday", f"date = {Y}-03-10", ["ulla-nord"], status="cancelled")))
    assert rig.run().code == 0
    cancels = by_recipient(rig.new())
    assert set(cancels) == {(ULLA, "allday"), (MILJA, "summer"), (ULLA, "summer")}
    assert all(i.method == "CANCEL" for i in cancels.values())
    assert cancels[(ULLA, "allday")].sequence > got[(ULLA, "allday")].sequence
    for who in (MILJA, ULLA):
        assert cancels[(who, "summer")].sequence == moved[(who, "summer")].sequence + 1

    # an ended session is never mailed, even after an edit
    rig.write(sessions(
        summer=None,
        winter=session("winter", timed(f"{Y}-01-15", "10:00", "11:30"), ["milja-kopsi"]),
        allday=session("allday", f"date = {Y}-03-10", ["ulla-nord"], status="cancelled"),
        old=session("old", timed("2019-09-24", "12:00", "14:00"), ["milja-kopsi", "ulla-nord"],
                    title="Moved in the past")))
    final = rig.run()
    assert final.code == 0
    assert rig.new() == []
    for result in (first, second, final):
        assert PASSWORD not in result.out + result.err


def test_the_shipped_programme_mails_nobody(tmp_path, smtp):
    """The shipped programme is from 2019: even with every mentor invited, nothing goes out."""
    from tests.fixtures.common import SHIPPED

    text = SHIPPED.read_text(encoding="utf-8")
    parts = text.split("[[mentors]]\n")  # each their own address (validate refuses sharing)
    text = parts[0] + "".join(f'[[mentors]]\ninvite = true\nemail = "m{n}@example.test"\n{part}'
                              for n, part in enumerate(parts[1:]))
    text = text.replace("[programme]\n", f'[programme]\norganiser_email = "{ORGANISER_EMAIL}"\n', 1)
    rig = Rig(tmp_path, smtp)
    rig.path.write_text(text, encoding="utf-8")
    check = run_cli("validate", "--programme", str(rig.path))
    assert check.code == 0, check.err
    result = rig.run()
    assert result.code == 0, result.err
    assert "summary: 0 sent" in result.out
    assert smtp.handler.messages() == []


def test_mass_cancel_is_held_until_allowed(tmp_path, smtp):
    rig = Rig(tmp_path, smtp)
    many = {f"s{i}": session(f"s{i}", f"date = {Y}-04-{i + 10:02d}", ["milja-kopsi"]) for i in range(6)}
    rig.write(many)
    assert rig.run().code == 0
    assert len(rig.new()) == 6
    rig.write({"s0": many["s0"]})  # five of six cancelled at once: a mistake more often than not
    held = rig.run()
    assert held.code == 1
    assert "HELD" in held.out
    assert "--allow-mass-cancel" in held.out
    assert rig.new() == []
    allowed = rig.run("--allow-mass-cancel")
    assert allowed.code == 0, allowed.out
    assert sorted(i.uid for i in rig.new() if i.method == "CANCEL") == [
        f"s{i}@klash.test" for i in range(1, 6)]


def test_cancelling_fewer_than_half_is_sent_without_confirmation(tmp_path, smtp):
    """Four of ten: more than three, but not most of the calendar. The guard counts the
    mentor's upcoming copies, kept per address (it once read the address as a mentor id,
    found none, and held any four cancellations)."""
    rig = Rig(tmp_path, smtp)
    many = {f"s{i}": session(f"s{i}", f"date = {Y}-04-{i + 10:02d}", ["milja-kopsi"]) for i in range(10)}
    rig.write(many)
    assert rig.run().code == 0
    assert len(rig.new()) == 10
    rig.write({k: v for k, v in many.items() if k not in {"s0", "s1", "s2", "s3"}})
    done = rig.run()
    assert done.code == 0, done.out
    assert "HELD" not in done.out
    assert sorted(i.uid for i in rig.new() if i.method == "CANCEL") == [
        f"s{i}@klash.test" for i in range(4)]


def test_validation_of_invite(tmp_path):
    path = tmp_path / "p.toml"
    text = header().replace('organiser_email = "klash@kuntaliitto.test"\n', "")
    text = text.replace(f'email = "{ADDRESSES["ulla-nord"]}"\n', "")
    text += ('\n[[mentors]]\nid = "both"\nname = "Both"\nemail = "b@example.test"\ninvite = true\n'
             '[mentors.caldav]\nurl = "https://dav.example.test/"\nusername = "b"\n'
             'password_env = "KLASH_PW_B"\n')
    path.write_text(text, encoding="utf-8")
    result = run_cli("validate", "--programme", str(path))
    assert result.code == 2
    assert "mentor 'ulla-nord', field 'invite': invitations need the mentor's address" in result.err
    assert "mentor 'both', field 'invite': choose invitations or a [caldav] push, not both" in result.err
    assert "[programme], field 'organiser_email'" in result.err
    assert "Traceback" not in result.err


def test_smtp_settings_errors_are_one_line(tmp_path, smtp):
    rig = Rig(tmp_path, smtp)
    rig.write(sessions())
    env = {"KLASH_PROGRAMME": str(rig.path), "KLASH_STATE_DIR": str(rig.state),
           "KLASH_SMTP_URL": "http://mail.example.test"}
    result = run_cli("invites", "--send", env=env)
    assert result.code == 2
    assert "KLASH_SMTP_URL: write smtp://host:587" in result.err
    assert "Traceback" not in result.err
    env["KLASH_SMTP_URL"] = ""
    result = run_cli("invites", "--send", env=env)
    assert result.code == 2
    assert "set KLASH_SMTP_URL" in result.err
    # a wrong password: every message stays pending with the server's answer, none is lost
    env = {**smtp.env(), "KLASH_PROGRAMME": str(rig.path), "KLASH_STATE_DIR": str(rig.state),
           "KLASH_SMTP_PASSWORD": "wrong-password-123"}
    result = run_cli("invites", "--send", env=env)
    assert result.code == 1
    assert "login refused: 535" in result.out
    assert "wrong-password-123" not in result.out + result.err
    assert smtp.handler.messages() == []
    assert rig.run().code == 0
    assert len(rig.new()) == 5


def test_a_refused_recipient_does_not_stop_the_others_and_is_sent_once_later(tmp_path, smtp):
    rig = Rig(tmp_path, smtp)
    rig.write(sessions())
    smtp.handler.refuse[MILJA] = "550 5.1.1 Recipient address rejected: User unknown"
    result = rig.run()
    assert result.code == 1
    assert sorted(i.to for i in rig.new()) == [ULLA, ULLA, ULLA]
    assert "FAILED REQUEST summer to milja-kopsi: 550 5.1.1 Recipient address rejected" in result.out
    preview = rig.run(send=False)
    assert "milja-kopsi" not in preview.out  # refused for good: not planned again by itself ...
    del smtp.handler.refuse[MILJA]
    assert rig.run().code == 0  # ... but `invites --send` tries it again, once
    assert sorted((i.to, i.uid) for i in rig.new()) == [(MILJA, "summer@klash.test"),
                                                        (MILJA, "winter@klash.test")]
    assert rig.run().code == 0
    assert rig.new() == []
