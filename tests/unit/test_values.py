"""Values checked where they enter: what cannot be sent or rendered right is refused by the
loader, naming the file, the line, the mentor or session and the field.

Each value here was accepted before (issue 18): an address with a name, a list or a
control character went to the SMTP server and failed the whole batch; a line separator in
a title split it in some clients only; an id ending in a line break became a UID with one.
"""

from __future__ import annotations

import pytest

from klash_sync.errors import ProgrammeError
from klash_sync.programme.load import parse
from tests.fixtures.hostile import toml_str

HEAD = '[programme]\nname = "P"\nuid_domain = "klash.test"\norganiser = "O"\n'


def problems_of(text: str) -> list[str]:
    with pytest.raises(ProgrammeError) as caught:
        parse(text.encode(), "conf/programme.toml")
    return [str(p) for p in caught.value.problems]


def line_of(text: str, snippet: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if line.startswith(snippet))


BAD_EMAILS = [
    ("display name", "Milja Köpsi <milja@example.fi>", "without a name"),
    ("angle bracket", "milja@example.fi>", "not a single address"),
    ("list with a comma", "milja@example.fi,ulla@example.fi", "not a single address"),
    ("list with a semicolon", "milja@example.fi;ulla@example.fi", "not a single address"),
    ("space", "milja @example.fi", "contains a space"),
    ("tab", "milja\t@example.fi", "control character"),
    ("trailing newline", "milja@example.fi\n", "control character"),
    ("carriage return", "milja@example.fi\rBcc: x@evil.test", "control character"),
    ("bell", "mil\x07ja@example.fi", "control character"),
    ("escape", "\x1b[31mmilja@example.fi", "control character"),
    ("NEL", "milja\x85@example.fi", "control character"),
    ("line separator", "milja@example.fi\u2028", "control character"),
    ("non-ASCII domain", "milja@ylöjärvi.fi", "xn--"),
    ("non-ASCII symbol in the local part", "milja☃@example.fi", "before '@'"),
    ("quoted local part", '"milja kopsi"@example.fi', "not a single address"),
    ("double dot", "milja..kopsi@example.fi", "before '@'"),
    ("two at signs", "milja@kopsi@example.fi", "before '@'"),
    ("domain without a dot", "milja@localhost", "not a domain name"),
    ("domain literal", "milja@[192.0.2.1]", "not a single address"),
    ("hyphen-led label", "milja@-example.fi", "not a domain name"),
]


@pytest.mark.parametrize(("name", "address", "words"), BAD_EMAILS, ids=[b[0] for b in BAD_EMAILS])
def test_a_mentor_address_that_is_not_one_bare_ascii_addr_spec_is_refused(name, address, words):
    text = (HEAD + 'organiser_email = "klash@example.fi"\n[[mentors]]\nid = "milja-kopsi"\n'
            f'name = "Milja"\nemail = {toml_str(address)}\ninvite = true\n')
    found = problems_of(text)
    line = line_of(text, "email = ")
    assert any(p.startswith(f"conf/programme.toml, line {line}: mentor 'milja-kopsi', field 'email': ")
               and words in p for p in found), found
    assert all("\n" not in p and "\x1b" not in p and "\u2028" not in p for p in found), found


@pytest.mark.parametrize(("name", "address", "words"), BAD_EMAILS, ids=[b[0] for b in BAD_EMAILS])
def test_an_organiser_address_that_is_not_one_bare_ascii_addr_spec_is_refused(name, address, words):
    text = HEAD + f"organiser_email = {toml_str(address)}\n"
    found = problems_of(text)
    line = line_of(text, "organiser_email = ")
    assert any(p.startswith(f"conf/programme.toml, line {line}: [programme], field 'organiser_email': ")
               and words in p for p in found), found


GOOD_EMAILS = ["milja@example.fi", "milja.köpsi@example.fi", "milja.kopsi+klash@kunta.example.fi",
               "o'brien@example.fi",
               "a_b-c@sub-domain.example.fi", "x@example.museum", "MILJA@EXAMPLE.FI"]


@pytest.mark.parametrize("address", GOOD_EMAILS)
def test_ordinary_addresses_are_accepted_as_written_and_with_a_name_refused(address):
    def programme(value: str) -> str:
        return (HEAD + f'organiser_email = {toml_str(value)}\n[[mentors]]\nid = "m"\n'
                f'name = "M"\nemail = {toml_str(value)}\ninvite = true\n')

    accepted = parse(programme(address).encode(), "p.toml")
    assert accepted.mentors[0].email == address
    assert accepted.programme.organiser_email == address
    found = problems_of(programme(f"Milja <{address}>"))
    assert len(found) == 2, found
    assert "[programme], field 'organiser_email': " in found[0]
    assert "mentor 'm', field 'email': " in found[1]
    assert all(repr(f"Milja <{address}>") + " is not a single address" in p for p in found)


SEPARATORS = [("line separator", "\u2028"), ("paragraph separator", "\u2029")]
ONE_LINE = [("session", "title"), ("session", "location"), ("session", "municipality"),
            ("mentor", "name"), ("programme", "name"), ("programme", "organiser"),
            ("caldav", "username"), ("caldav", "calendar")]


def _with(where: str, field: str, value: str) -> tuple[str, str]:
    """A programme with ``value`` in ``field`` of ``where``, and the place its message names."""
    quoted = toml_str(value)
    programme = {"name": '"P"', "organiser": '"O"'}
    session = {"title": '"T"', "location": '"L"', "municipality": '"M"', "description": '"D"'}
    mentor = {"name": '"N"'}
    caldav = {"username": '"u"', "calendar": '"Klash"'}
    table = {"programme": programme, "session": session, "mentor": mentor, "caldav": caldav}[where]
    table[field] = quoted
    text = ('[programme]\nuid_domain = "klash.test"\n'
            + "".join(f"{k} = {v}\n" for k, v in programme.items())
            + '[[mentors]]\nid = "m"\n' + "".join(f"{k} = {v}\n" for k, v in mentor.items())
            + '[mentors.caldav]\nurl = "https://dav.example.fi/"\npassword_env = "KLASH_PW_M"\n'
            + "".join(f"{k} = {v}\n" for k, v in caldav.items())
            + '[[sessions]]\nid = "s"\ndate = 2019-10-01\nmentors = ["m"]\n'
            + "".join(f"{k} = {v}\n" for k, v in session.items()))
    place = {"programme": "[programme]", "session": "session 's'", "mentor": "mentor 'm'",
             "caldav": "mentor 'm', [caldav]"}[where]
    return text, place


@pytest.mark.parametrize("separator", [s[1] for s in SEPARATORS], ids=[s[0] for s in SEPARATORS])
@pytest.mark.parametrize(("where", "field"), ONE_LINE, ids=[f"{w}-{f}" for w, f in ONE_LINE])
def test_line_and_paragraph_separators_in_one_line_text_are_refused(where, field, separator):
    text, place = _with(where, field, f"Nuoret{separator}opintopolulle")
    found = problems_of(text)
    assert any(f": {place}, field '{field}': " in p and "U+2028 or U+2029" in p
               and p.startswith("conf/programme.toml, line ") for p in found), found


@pytest.mark.parametrize("separator", [s[1] for s in SEPARATORS], ids=[s[0] for s in SEPARATORS])
def test_line_and_paragraph_separators_in_a_description_are_refused(separator):
    text, _ = _with("session", "description", f"first{separator}second\nthird\tfourth")
    found = problems_of(text)
    line = line_of(text, "description = ")
    assert any(p.startswith(f"conf/programme.toml, line {line}: session 's', field 'description': ")
               and "U+2028 or U+2029" in p for p in found), found


def test_a_description_keeps_its_line_breaks_and_tabs_but_not_a_separator():
    text, _ = _with("session", "description", "first\nsecond\tthird\r\nfourth")
    assert parse(text.encode(), "p.toml").sessions[0].description == "first\nsecond\tthird\nfourth"
    text, _ = _with("session", "description", "first\nsecond\tthird\u2029fourth")
    assert any("field 'description'" in p for p in problems_of(text))


@pytest.mark.parametrize("field", ["password_file", "ca_bundle"])
@pytest.mark.parametrize("value", ["/run/secrets/pw\n", "/run/secrets/\x00pw", "/run/\x1b[2Jpw",
                                   "/run/secrets/pw\u2028"])
def test_file_names_in_a_caldav_table_hold_no_control_characters(field, value):
    text = ('[programme]\nname = "P"\nuid_domain = "klash.test"\norganiser = "O"\n'
            '[[mentors]]\nid = "m"\nname = "N"\n[mentors.caldav]\nurl = "https://dav.example.fi/"\n'
            f'username = "u"\n{field} = {toml_str(value)}\n'
            + ('' if field == "password_file" else 'password_env = "KLASH_PW_M"\n'))
    found = problems_of(text)
    assert any(f"mentor 'm', [caldav], field '{field}': " in p and "control character" in p
               for p in found), found


@pytest.mark.parametrize("table", ["mentors", "sessions"])
def test_an_id_ending_in_a_line_break_is_refused_on_one_line(table):
    more = 'name = "N"\n' if table == "mentors" else 'title = "T"\ndate = 2019-10-01\n'
    text = HEAD + f'[[{table}]]\nid = "milja\\n"\n{more}'
    found = problems_of(text)
    kind = table[:-1]
    assert any(p.startswith(f"conf/programme.toml, line 6: {kind} #1, field 'id': ")
               and "'milja\\n' is not a valid id" in p for p in found), found
    assert all("\n" not in p for p in found), found


@pytest.mark.parametrize("zone", ["Europe/Helsinki\n", "\x1b[2J", "Europe/Helsinki\u2028"])
def test_a_time_zone_with_a_control_character_is_shown_escaped_on_one_line(zone):
    text = HEAD + f"timezone = {toml_str(zone)}\n"
    [found] = problems_of(text)
    assert found.startswith("conf/programme.toml, line 5: [programme], field 'timezone': "), found
    assert f"{zone!r} is not a known time zone" in found
    assert not any(c in found for c in "\n\x1b\u2028"), found


def test_checks_across_the_programme_run_beside_an_entry_mistake_but_not_on_a_misshapen_table():
    session = '[[sessions]]\nid = "s"\ntitle = "T"\ndate = "1.10.2019"\nmentors = ["m", "x"]\n'
    listed = problems_of(HEAD + '[[mentors]]\nid = "m"\nname = "M"\n' + session)
    assert [p.split(": ", 2)[1] for p in listed] == ["session 's', field 'date'",
                                                     "session 's', field 'mentors'"], listed
    assert "'x' is not a known mentor" in listed[1]
    # [mentors] instead of [[mentors]]: said once, not once more per session as "unknown".
    [misshapen] = problems_of(HEAD + '[mentors]\nid = "m"\nname = "M"\n'
                              + session.replace('"1.10.2019"', "2019-10-01"))
    assert "write each mentor as a [[mentors]] table" in misshapen
