"""Routing: which channel reaches each mentor, decided once, from the programme and one switch."""

from __future__ import annotations

import pytest

from klash_sync.errors import ProgrammeError
from klash_sync.programme import routing
from klash_sync.programme.load import parse
from klash_sync.settings import Settings

HEADER = """
[programme]
name = "Testiohjelma"
timezone = "Europe/Helsinki"
uid_domain = "klash.test"
organiser = "Kuntaliitto"
{sender}

[[mentors]]
id = "oma-kalenteri"
name = "Oma Kalenteri"
[mentors.caldav]
url = "https://cal.example.fi/dav/"
username = "oma"
password_env = "OMA_PASSWORD"

[[mentors]]
id = "kutsuttu"
name = "Kutsuttu Mentori"
email = "kutsuttu@example.fi"
invite = true

[[mentors]]
id = "tavallinen"
name = "Tavallinen Mentori"
email = "tavallinen@example.fi"

[[sessions]]
id = "aloitus"
title = "Aloitus"
start = 2026-03-02T10:00:00
end = 2026-03-02T11:00:00
mentors = ["oma-kalenteri", "kutsuttu", "tavallinen"]
"""

PROGRAMME = parse(HEADER.format(sender='organiser_email = "ohjelma@example.fi"').encode(), "p.toml")


def test_each_mentor_has_one_channel_with_the_embedded_server():
    assert routing.route(PROGRAMME, embedded=True) == {
        "oma-kalenteri": "caldav", "kutsuttu": "invite", "tavallinen": "embedded"}


def test_without_the_embedded_server_the_others_get_feeds_only():
    assert routing.route(PROGRAMME, embedded=False) == {
        "oma-kalenteri": "caldav", "kutsuttu": "invite", "tavallinen": "feeds"}


def test_invited_mentors_are_never_pushed_to():
    assert [m.id for m in routing.invited(PROGRAMME)] == ["kutsuttu"]
    assert [m.id for m in routing.reached_by(PROGRAMME, routing.EMBEDDED, embedded=True)] == ["tavallinen"]


@pytest.mark.parametrize("embedded", [True, False])
def test_the_caldav_channel_targets_follow_routing(embedded):
    from klash_sync.deliver.caldav.sync import target_of

    settings = Settings(embedded_caldav=embedded)
    kinds = {m.id: (target_of(m, settings) or {}).get("kind") for m in PROGRAMME.mentors}
    assert kinds == {"oma-kalenteri": "caldav", "kutsuttu": None,
                     "tavallinen": "embedded" if embedded else None}


def test_an_invitation_without_an_address_reaches_nobody_and_is_refused_on_load():
    mentor = PROGRAMME.mentor("kutsuttu")
    assert mentor is not None
    assert routing.channel_of(mentor.model_copy(update={"email": None}), embedded=True) == "feeds"
    text = HEADER.format(sender='organiser_email = "ohjelma@example.fi"').replace(
        'email = "kutsuttu@example.fi"\n', "")
    with pytest.raises(ProgrammeError, match="invitations need the mentor's address"):
        parse(text.encode(), "p.toml")


def test_invitations_need_a_sender_and_exclude_a_push():
    text = HEADER.format(sender="").replace('password_env = "OMA_PASSWORD"\n',
                                            'password_env = "OMA_PASSWORD"\n[[mentors]]\n'
                                            'id = "molemmat"\nname = "Molemmat"\n'
                                            'email = "m@example.fi"\ninvite = true\n'
                                            '[mentors.caldav]\nurl = "https://c.example.fi/"\n'
                                            'username = "m"\npassword_env = "M"\n')
    with pytest.raises(ProgrammeError) as caught:
        parse(text.encode(), "p.toml")
    messages = [p.message for p in caught.value.problems]
    assert any("choose invitations or a [caldav] push, not both" in m for m in messages)
    assert sum("which need a sender" in m for m in messages) == 2  # one per invited mentor
