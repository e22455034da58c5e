"""One e-mail read as an iMIP REPLY (pure): each client's shape gives the same answer, and the
organiser's own Authentication-Results are read as RFC 8601 writes them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from klash_sync.deliver.invite.reply import NotAnswer, authentication_passes, read_reply
from tests.fixtures import reply_samples as shape

T = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
ARGS = ("kickoff@klash.test", "milja@example.test", "Milja Kopsi", "DECLINED", 3, T, "Kickoff")


@pytest.mark.parametrize("make", [shape.outlook, shape.google, shape.apple, shape.thunderbird])
def test_every_clients_shape_is_the_same_answer(make):
    reply = read_reply(make(*ARGS))
    assert (reply.sender, reply.attendee, reply.uid, reply.answer, reply.sequence, reply.stamp) == (
        "milja@example.test", "milja@example.test", "kickoff@klash.test", "declined", 3, T)
    assert reply.comment == ""  # Outlook's empty COMMENT;LANGUAGE=en-US:\n is no note


def test_the_note_is_comment_or_googles_attendee_parameter():
    assert read_reply(shape.google(*ARGS, comment="Olen lomalla")).comment == "Olen lomalla"
    assert read_reply(shape.thunderbird(*ARGS, comment="Tulen junalla")).comment == "Tulen junalla"


def test_what_is_not_an_answer_says_why():
    with pytest.raises(NotAnswer, match="no iCalendar REPLY"):
        read_reply(shape.garbage())
    with pytest.raises(NotAnswer, match="NEEDS-ACTION is not an answer"):
        read_reply(shape.thunderbird(*ARGS[:3], "NEEDS-ACTION", *ARGS[4:]))
    with pytest.raises(NotAnswer, match=r"unreadable|no single From"):
        read_reply(b"\xff" * 100)


@pytest.mark.parametrize(("header", "passes"), [
    ("mx.example.test; dkim=pass header.d=example.test; spf=pass; dmarc=pass", True),
    ("mx.example.test; dkim=pass header.d=example.test; dmarc=fail (p=none)", False),
    ("MX.Example.Test 1; spf=pass smtp.mailfrom=example.test", True),  # a version, any case
    ("mx.example.test; spf=softfail; dkim=none", False),
    ("mx.example.test; none", False),
    ("mail.elsewhere.test; dmarc=pass", None),  # not ours: says nothing
])
def test_authentication_results_of_our_own_server(header, passes):
    assert authentication_passes(header, "mx.example.test") is passes
