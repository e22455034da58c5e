"""The programme file: the shipped one is valid and right; broken ones get one clear message each.

These run the real command line as a subprocess, because what an organiser sees is the
terminal output and the exit code, and a traceback there is a bug.
"""

from __future__ import annotations

from datetime import date

import pytest

from klash_sync.errors import ProgrammeError
from klash_sync.programme.load import load, parse
from tests.fixtures.common import HEADER, SHIPPED, programme_text, run_cli

GOOD_SESSION = """
id = "vantaa"
title = "Nuoret opintopolulle"
municipality = "Vantaa"
date = 2019-10-08
mentors = ["ulla-nord"]
"""

# (name, file content, words the message must contain, where the message must point:
#  the line holding a snippet, or its n-th occurrence, or None where no line applies)
Where = str | tuple[str, int] | None
BROKEN: list[tuple[str, bytes | str, list[str], Where]] = [
    ("toml syntax error", HEADER + '\n[[sessions]]\nid = "x"\ntitle = Nuoret\n',
     ["TOML syntax", "column"], "title = Nuoret"),
    ("unclosed string", HEADER + '\n[[sessions]]\nid = "x\n', ["TOML syntax"], 'id = "x'),
    ("empty file", "", ["is empty", "[programme]"], None),
    ("only whitespace", "  \n\n", ["is empty"], None),
    ("not utf-8", HEADER.replace("Köpsi", "K\xf6psi").encode("latin-1"),
     ["not valid UTF-8", "column"], "name = \"Milja"),
    ("duplicate session id", programme_text(GOOD_SESSION, GOOD_SESSION),
     ["session 'vantaa'", "field 'id'", "used twice"], ('id = "vantaa"', 2)),
    ("duplicate mentor id", HEADER + '\n[[mentors]]\nid = "ulla-nord"\nname = "Toinen Ulla"\n',
     ["mentor 'ulla-nord'", "used twice"], ('id = "ulla-nord"', 2)),
    ("unknown mentor", programme_text(GOOD_SESSION.replace('"ulla-nord"', '"ula-nord"')),
     ["session 'vantaa'", "field 'mentors'", "'ula-nord' is not a known mentor",
      "did you mean 'ulla-nord'"], "mentors = ["),
    ("end before start", programme_text(
        'id = "s"\ntitle = "T"\nstart = 2019-10-08T12:00:00\nend = 2019-10-08T09:00:00'),
     ["session 's'", "must be after 'start'"], "[[sessions]]"),
    ("bad time zone", HEADER.replace("Europe/Helsinki", "Europe/Helsinky"),
     ["[programme]", "field 'timezone'", "not a known time zone", "Europe/Helsinki"], "timezone ="),
    ("date and start together", programme_text(
        'id = "s"\ntitle = "T"\ndate = 2019-10-08\nstart = 2019-10-08T12:00:00\n'
        'end = 2019-10-08T13:00:00'), ["session 's'", "not both"], "[[sessions]]"),
    ("wrong type: mentors as string", programme_text(
        'id = "s"\ntitle = "T"\ndate = 2019-10-08\nmentors = "ulla-nord"'),
     ["session 's'", "field 'mentors'", "must be a list"], "mentors = \""),
    ("finnish date in quotes", programme_text('id = "s"\ntitle = "T"\ndate = "8.10.2019"'),
     ["session 's'", "field 'date'", "not a date", "2019-09-24"], "date = \"8"),
    ("unknown key", programme_text('id = "s"\ntitel = "T"\ndate = 2019-10-08'),
     ["session 's'", "field 'titel'", "did you mean 'title'"], "titel ="),
    ("bad status", programme_text('id = "s"\ntitle = "T"\ndate = 2019-10-08\nstatus = "peruttu"'),
     ["session 's'", "field 'status'", "'cancelled'"], "status ="),
    ("missing programme table", '[[mentors]]\nid = "a"\nname = "A"\n',
     ["[programme] table is missing"], None),
    ("invalid id", programme_text('id = "Vantaa 2019"\ntitle = "T"\ndate = 2019-10-08'),
     ["field 'id'", "not a valid id", "vantaa-2019"], 'id = "Vantaa'),
    ("inline password", HEADER + '\n[mentors.caldav]\nurl = "https://dav.example.fi/"\n'
     'username = "u"\npassword = "hunter22"\n',
     ["mentor 'ulla-nord'", "password_env"], None),
    ("nonexistent local time", programme_text(
        'id = "s"\ntitle = "T"\nstart = 2019-03-31T03:30:00\nend = 2019-03-31T05:00:00'),
     ["field 'start'", "does not exist"], "start ="),
    ("ambiguous local time", programme_text(
        'id = "s"\ntitle = "T"\nstart = 2019-10-27T03:30:00\nend = 2019-10-27T05:00:00'),
     ["field 'start'", "happens twice"], "start ="),
    ("sessions as a table", HEADER + '\n[sessions]\nid = "x"\n',
     ["[[sessions]]"], None),
    ("timed without end", programme_text('id = "s"\ntitle = "T"\nstart = 2019-10-08T12:00:00'),
     ["session 's'", "'end' is missing"], "[[sessions]]"),
]


@pytest.mark.parametrize(("name", "content", "words", "line"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_programme_gives_clear_message_and_exit_2(
    write_programme, name, content, words, line
):
    path = write_programme(content)
    result = run_cli("validate", "--programme", str(path))
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert result.out == ""
    message = result.err
    assert str(path) in message
    for word in words:
        assert word in message, f"{word!r} missing from:\n{message}"
    if line is not None:
        expected = _line_of(content, line)
        assert f", line {expected}" in message, message


def _line_of(content: bytes | str, where: str | tuple[str, int]) -> int:
    snippet, nth = (where, 1) if isinstance(where, str) else where
    text = content.decode("latin-1") if isinstance(content, bytes) else content
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if snippet in line]
    return hits[nth - 1]


def test_every_problem_in_the_file_is_listed(write_programme):
    text = programme_text(
        'id = "a"\ntitle = "T"\ndate = 2019-10-08\nmentors = ["nobody"]',
        'id = "b"\ntitle = "T"\ndate = 2019-10-09\nmentors = ["noone"]',
    )
    with pytest.raises(ProgrammeError) as caught:
        parse(text.encode(), "p.toml")
    problems = caught.value.problems
    assert [p.place for p in problems] == ["session 'a'", "session 'b'"]
    assert problems[0].line is not None
    assert problems[1].line is not None
    assert problems[0].line < problems[1].line


def test_missing_file_is_a_clear_error(tmp_path):
    result = run_cli("validate", "--programme", str(tmp_path / "nope.toml"))
    assert result.code == 2
    assert "nope.toml" in result.err
    assert "not found" in result.err
    assert "Traceback" not in result.err


def test_shipped_programme_is_valid():
    result = run_cli("validate")
    assert result.code == 0, result.err
    assert "5 sessions" in result.out
    assert "8 mentors" in result.out


def test_shipped_programme_matches_the_press_release():
    programme = load(SHIPPED)
    assert programme.programme.timezone == "Europe/Helsinki"
    by_date = {s.date: s for s in programme.sessions}
    expected = {
        date(2019, 9, 24): ("Janakkala", ["taina-haapamaki", "sami-tantarimaki"],
                            "Janakkalan kunnan osuus ja liikkumispalvelut", "palvelumallia"),
        date(2019, 10, 1): ("Joensuu", ["milja-kopsi", "merja-lang"],
                            "Kuntalaisten omaehtoinen toiminta", "yhteisöllisyyden"),
        date(2019, 10, 8): ("Vantaa", ["ulla-nord", "rami-saarniaho"],
                            "Nuoret opintopolulle", "keskeyttäminen"),
        date(2019, 10, 15): (None, ["peter-westerbacka", "ville-tikka"], "yhteinen", "Helsingissä"),
        date(2019, 10, 22): (None, ["peter-westerbacka", "ville-tikka"], "yhteinen", "Helsingissä"),
    }
    assert set(by_date) == set(expected)
    for day, (municipality, mentors, title, words) in expected.items():
        session = by_date[day]
        assert session.municipality == municipality
        assert list(session.mentors) == mentors
        assert title in session.title
        assert words in session.description
        assert session.all_day
        assert session.status == "confirmed"
    names = {m.id: m.name for m in programme.mentors}
    assert names["milja-kopsi"] == "Milja Köpsi"
    assert names["sami-tantarimaki"] == "Sami Tantarimäki"
    # Nothing invented: no e-mail addresses in the shipped file.
    assert all(m.email is None for m in programme.mentors)
    assert set(programme.municipalities()) == {"janakkala", "joensuu", "vantaa"}


def test_offsets_and_local_times_both_accepted(write_programme):
    path = write_programme(programme_text(
        'id = "a"\ntitle = "T"\nstart = 2019-10-08T09:00:00+03:00\nend = 2019-10-08T12:00:00+03:00',
        'id = "b"\ntitle = "T"\nstart = 2019-10-08T09:00:00\nend = 2019-10-08T12:00:00',
    ))
    assert run_cli("validate", "--programme", str(path)).code == 0


def test_help_for_each_command():
    for command in ("validate", "export", "serve"):
        result = run_cli(command, "--help")
        assert result.code == 0
        assert "usage: klash-sync " + command in result.out
    assert run_cli("--version").out.startswith("klash-sync ")


def test_three_kinds_of_mistakes_are_listed_in_one_run(write_programme):
    # A bad date used to hide the whole-programme checks: the unknown mentor and the
    # duplicate id appeared only after it was fixed, one round per kind (issue 18).
    text = programme_text(
        'id = "joensuu"\ntitle = "T"\ndate = "1.10.2019"\nmentors = ["milja-kopsi"]',
        'id = "vantaa"\ntitle = "T"\ndate = 2019-10-08\nmentors = ["ula-nord"]',
        'id = "vantaa"\ntitle = "Toinen"\ndate = 2019-10-09\nmentors = ["ulla-nord"]',
    )
    path = write_programme(text)
    result = run_cli("validate", "--programme", str(path))
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.startswith(str(path))]
    expected = [
        (_line_of(text, 'date = "1.10'), "session 'joensuu', field 'date': is not a date"),
        (_line_of(text, '"ula-nord"'), "session 'vantaa', field 'mentors': 'ula-nord' is not a "
                                       "known mentor; did you mean 'ulla-nord'?"),
        (_line_of(text, ('id = "vantaa"', 2)), "session 'vantaa', field 'id': the id is used twice"),
    ]
    for line, words in expected:
        assert any(f"{path}, line {line}: {words}" in found for found in lines), (words, result.err)


def test_a_mistake_in_one_table_hides_none_in_the_others(write_programme):
    # Each entry's own mistakes (a bad address, a bad status) and every check across the
    # programme (time zone, duplicate and unknown ids, a local time that does not exist,
    # invitations without a sender, two mentors on one calendar) in one run.
    caldav = ('\n[mentors.caldav]\nurl = "https://dav.example.fi/"\nusername = "u"\n'
              'password_env = "KLASH_PW"\n')
    header = (HEADER.replace("Europe/Helsinki", "Europe/Helsinky")
              + '\n[[mentors]]\nid = "rami"\nname = "Rami"\nemail = "Rami <rami@example.fi>"\n'
              + '\n[[mentors]]\nid = "ville"\nname = "Ville"\nemail = "ville@example.fi"\n'
                'invite = true\n'
              + '\n[[mentors]]\nid = "peter"\nname = "Peter"' + caldav
              + '\n[[mentors]]\nid = "sami"\nname = "Sami"' + caldav
              + '\n[[mentors]]\nid = "ulla-nord"\nname = "Toinen Ulla"\n')
    text = programme_text(
        'id = "a"\ntitle = "T"\ndate = 2019-10-08\nstatus = "peruttu"\nmentors = ["rami"]',
        'id = "b"\ntitle = "T"\nstart = 2019-03-31T03:30:00\nend = 2019-03-31T05:00:00\n'
        'mentors = ["nobody"]',
        header=header)
    result = run_cli("validate", "--programme", str(write_programme(text)))
    assert result.code == 2, result.err
    for words in ["[programme], field 'timezone': 'Europe/Helsinky' is not a known time zone",
                  "mentor 'rami', field 'email': 'Rami <rami@example.fi>' is not a single address",
                  "mentor 'ulla-nord', field 'id': the id is used twice",
                  "session 'a', field 'status': must be one of",
                  "session 'b', field 'mentors': 'nobody' is not a known mentor",
                  "[programme], field 'organiser_email': mentor 'ville' gets invitations",
                  "mentor 'sami', field 'caldav': points at the same calendar as mentor 'peter'"]:
        assert words in result.err, (words, result.err)
    assert "'rami' is not a known mentor" not in result.err  # an invalid entry is still known
    # The time zone is unknown, so no local time is judged against it.
    assert "does not exist" not in result.err
