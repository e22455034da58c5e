"""Every change reaches every address that holds a copy, filed by a real iMIP-processing
calendar (Cyrus, see cyrus_server.py): a mentor's new address gets the session and the
old one loses it; a mentor taken off a session that goes on gets a CANCEL without
STATUS:CANCELLED (RFC 5546 3.2.5) while the others keep it; a session moved into the past
is updated; two invited mentors at one address are refused by `validate`; a new organiser
address hands each copy over; an address that leaves loses every copy, past ones too. (The
preview's messages are compared with what is sent in test_invites_preview.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from tests.fixtures.common import run_cli
from tests.fixtures.cyrus_server import DOMAIN, CyrusServer
from tests.fixtures.invite_helpers import ORGANISER_EMAIL, read_itip, session, timed

Y = datetime.now(UTC).year + 1
UID = "kickoff@klash.test"


@pytest.fixture(scope="module")
def mailboxes() -> Iterator[CyrusServer]:
    """Cyrus with a third mailbox: the address Milja moves to."""
    server = CyrusServer(["milja", "ulla", "mkopsi"])
    server.start()
    yield server
    server.stop()


def programme(*, day: str = f"{Y}-06-10", milja: str = "milja", mentors=("milja", "ulla"),
              ulla: str = "ulla", organiser: str = ORGANISER_EMAIL, status: str = "confirmed") -> str:
    text = f"""
[programme]
name = "Testiohjelma"
uid_domain = "klash.test"
organiser = "Kuntaliitto"
organiser_email = "{organiser}"
"""
    for mid, box in (("milja", milja), ("ulla", ulla)):
        text += (f'\n[[mentors]]\nid = "{mid}"\nname = "{mid.title()}"\n'
                 f'email = "{box}@{DOMAIN}"\ninvite = true\n')
    return text + session("kickoff", timed(day, "10:00", "12:00"), list(mentors), status=status)


class Rig:
    """`invites --send` as a process, each message accepted by the SMTP server handed to Cyrus."""

    def __init__(self, tmp_path: Path, smtp, cyrus: CyrusServer | None) -> None:
        self.path = tmp_path / "programme.toml"
        self.env = {**smtp.env(), "KLASH_PROGRAMME": str(self.path),
                    "KLASH_STATE_DIR": str(tmp_path / "state")}
        self.smtp, self.cyrus, self.relayed = smtp, cyrus, 0

    def send(self, text: str) -> list:
        self.path.write_text(text, encoding="utf-8")
        result = run_cli("invites", "--send", env=self.env)
        assert result.code == 0, result.out + result.err
        new = self.smtp.handler.messages()[self.relayed:]
        for message in new if self.cyrus is not None else ():
            self.cyrus.deliver(message.raw, message.sender, message.recipients[0])
        self.relayed += len(new)
        return new


def calendar_of(received) -> dict:
    msg = message_from_bytes(received.raw, policy=default)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    parsed = read_itip(part.get_payload(decode=True))
    return {"method": parsed["method"], **parsed["events"][0]}


def start(event) -> str:
    return event.decoded("DTSTART").astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def test_a_new_address_gets_the_session_and_the_old_one_loses_it(tmp_path, smtp, mailboxes):
    rig = Rig(tmp_path, smtp, mailboxes)
    rig.send(programme())
    assert UID in mailboxes.events("milja")
    sent = rig.send(programme(milja="mkopsi"))  # Milja's address changes
    assert sorted((m.recipients[0], calendar_of(m)["method"]) for m in sent) == [
        (f"milja@{DOMAIN}", "CANCEL"), (f"mkopsi@{DOMAIN}", "REQUEST")]
    cancel = calendar_of(next(m for m in sent if m.recipients[0] == f"milja@{DOMAIN}"))
    assert cancel["status"] is None  # the session goes on: Milja is uninvited at the old address
    assert [a["value"] for a in cancel["attendees"]] == [f"mailto:milja@{DOMAIN}"]
    assert UID not in mailboxes.events("milja")
    assert start(mailboxes.events("mkopsi")[UID]) == f"{Y}-06-10T07:00Z"
    assert UID in mailboxes.events("ulla")
    assert rig.send(programme(milja="mkopsi")) == []  # nothing more to say


def test_taken_off_a_session_that_goes_on_the_others_keep_it_uncancelled(tmp_path, smtp, mailboxes):
    rig = Rig(tmp_path, smtp, mailboxes)
    rig.send(programme(day=f"{Y}-08-11"))
    assert UID in mailboxes.events("ulla")
    sent = rig.send(programme(day=f"{Y}-08-11", mentors=("milja",)))
    assert [m.recipients[0] for m in sent] == [f"ulla@{DOMAIN}"]
    cancel = calendar_of(sent[0])
    assert (cancel["method"], cancel["status"]) == ("CANCEL", None)
    assert [a["value"] for a in cancel["attendees"]] == [f"mailto:ulla@{DOMAIN}"]
    assert UID not in mailboxes.events("ulla")
    kept = mailboxes.events("milja")[UID]
    assert str(kept.get("STATUS", "CONFIRMED")) != "CANCELLED"
    # the session itself called off: a CANCEL of the whole, STATUS:CANCELLED
    sent = rig.send(programme(day=f"{Y}-08-11", mentors=("milja",), status="cancelled"))
    whole = calendar_of(sent[0])
    assert (sent[0].recipients[0], whole["method"], whole["status"]) == (
        f"milja@{DOMAIN}", "CANCEL", "CANCELLED")
    assert UID not in mailboxes.events("milja")


def test_a_session_moved_into_the_past_is_updated_but_never_first_invited(tmp_path, smtp, mailboxes):
    rig = Rig(tmp_path, smtp, mailboxes)
    rig.send(programme(day=f"{Y}-09-12", mentors=("ulla",)))
    assert start(mailboxes.events("ulla")[UID]) == f"{Y}-09-12T07:00Z"
    past = f"{Y - 3}-09-12"  # a wrong date corrected to a day that has passed
    sent = rig.send(programme(day=past, mentors=("ulla",)))
    assert [(m.recipients[0], calendar_of(m)["method"]) for m in sent] == [
        (f"ulla@{DOMAIN}", "REQUEST")]
    assert start(mailboxes.events("ulla")[UID]) == f"{Y - 3}-09-12T07:00Z"
    # Milja joins the session that has ended: no first invitation to the past
    assert rig.send(programme(day=past, mentors=("ulla", "milja"))) == []
    assert rig.send(programme(day=past, mentors=("ulla", "milja"))) == []  # and its copy: done


def with_old(text: str, day: str) -> str:
    """The programme plus a session of Milja's alone on ``day``."""
    return text + session("old", timed(day, "09:00", "10:00"), ["milja"])


OLD = "old@klash.test"


def test_a_changed_address_gets_a_cancel_of_every_copy_it_holds_past_ones_too(
        tmp_path, smtp, mailboxes):
    rig = Rig(tmp_path, smtp, mailboxes)
    rig.send(with_old(programme(day=f"{Y}-05-16"), f"{Y}-05-17"))
    past = f"{Y - 2}-05-17"  # a date corrected to a day that has passed: the copy follows it
    rig.send(with_old(programme(day=f"{Y}-05-16"), past))
    assert start(mailboxes.events("milja")[OLD]) == f"{past}T06:00Z"
    sent = rig.send(with_old(programme(day=f"{Y}-05-16", milja="mkopsi"), past))
    got = sorted((m.recipients[0], calendar_of(m)["uid"], calendar_of(m)["method"]) for m in sent)
    assert got == [(f"milja@{DOMAIN}", UID, "CANCEL"), (f"milja@{DOMAIN}", OLD, "CANCEL"),
                   (f"mkopsi@{DOMAIN}", UID, "REQUEST")]  # never a first invitation to the past
    assert mailboxes.events("milja") == {}  # the old calendar holds nothing of ours
    assert list(mailboxes.events("mkopsi")) == [UID]
    assert rig.send(with_old(programme(day=f"{Y}-05-16", milja="mkopsi"), past)) == []


def test_a_mentor_removed_from_the_programme_is_named_and_loses_every_copy(
        tmp_path, smtp, mailboxes):
    rig = Rig(tmp_path, smtp, mailboxes)
    rig.send(with_old(programme(day=f"{Y}-04-18"), f"{Y}-04-19"))
    past = f"{Y - 2}-04-19"
    rig.send(with_old(programme(day=f"{Y}-04-18"), past))
    without = programme(day=f"{Y}-04-18", mentors=("ulla",))  # Milja and her session leave
    begins = without.index('[[mentors]]\nid = "milja"')
    sent = rig.send(without[:begins] + without[without.index("[[mentors]]", begins + 1):])
    assert sorted((m.recipients[0], calendar_of(m)["uid"]) for m in sent) == [
        (f"milja@{DOMAIN}", UID), (f"milja@{DOMAIN}", OLD)]
    for m in sent:
        assert calendar_of(m)["method"] == "CANCEL"
        assert str(message_from_bytes(m.raw, policy=default)["To"]) == f"Milja <milja@{DOMAIN}>"
    assert mailboxes.events("milja") == {}
    assert list(mailboxes.events("ulla")) == [UID]


def test_two_invited_mentors_at_one_address_are_refused_naming_both(tmp_path):
    path = tmp_path / "programme.toml"
    path.write_text(programme(ulla="milja"), encoding="utf-8")
    check = run_cli("validate", "--programme", str(path))
    assert check.code == 2, check.out + check.err
    line = next(x for x in check.err.splitlines() if "both get invitations" in x)
    assert f"{path}, line " in line
    assert "mentor 'ulla', field 'email'" in line
    assert "mentor 'milja' and mentor 'ulla'" in line
    assert f"milja@{DOMAIN}" in line


def test_a_new_organiser_address_hands_each_copy_over_and_later_changes_follow(
        tmp_path, smtp, mailboxes):
    rig = Rig(tmp_path, smtp, mailboxes)
    day = f"{Y}-10-13"
    first = {m.recipients[0]: calendar_of(m) for m in rig.send(programme(day=day))}
    new = "kalenteri@kuntaliitto.test"
    sent = rig.send(programme(day=day, organiser=new))
    # per address: a CANCEL from the old organiser, then a REQUEST from the new one
    got = [(m.recipients[0], m.sender, calendar_of(m)) for m in sent]
    for box in ("milja", "ulla"):
        mine = [(sender, cal) for to, sender, cal in got if to == f"{box}@{DOMAIN}"]
        assert [(sender, cal["method"]) for sender, cal in mine] == [
            (ORGANISER_EMAIL, "CANCEL"), (new, "REQUEST")]
        (_, cancel), (_, request) = mine
        assert cancel["organizer"]["value"] == f"mailto:{ORGANISER_EMAIL}"
        assert cancel["status"] == "CANCELLED"
        assert request["organizer"]["value"] == f"mailto:{new}"
        assert cancel["sequence"] > first[f"{box}@{DOMAIN}"]["sequence"]
        assert request["sequence"] > cancel["sequence"]
        filed = mailboxes.events(box)
        assert list(filed) == [UID]  # once, from the new organiser
        assert str(filed[UID]["ORGANIZER"]) == f"mailto:{new}"
    assert rig.send(programme(day=day, organiser=new)) == []  # nothing more to say
    # a later reschedule, from the new address, moves every copy
    later = f"{Y}-10-20"
    sent = rig.send(programme(day=later, organiser=new))
    assert sorted((m.recipients[0], m.sender) for m in sent) == [
        (f"milja@{DOMAIN}", new), (f"ulla@{DOMAIN}", new)]
    for box in ("milja", "ulla"):
        filed = mailboxes.events(box)
        assert list(filed) == [UID]
        assert start(filed[UID]) == f"{later}T07:00Z"
        assert str(filed[UID]["ORGANIZER"]) == f"mailto:{new}"
