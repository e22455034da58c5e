"""Our RFC 2047 encoder (deliver/invite/headers.py), for any text: Python's ``email`` (policy
default) reads back exactly what was written, in lines of at most 78 characters and
encoded words of at most 75, never split inside a character. (The Node decoder reads the
same in tests/integration/test_invite_messages.py.)"""

from __future__ import annotations

import email
import re
from email.message import EmailMessage
from email.policy import SMTP, default

from hypothesis import given, settings
from hypothesis import strategies as st

from klash_sync.deliver.invite.headers import mailbox, unstructured

WORD = re.compile(r"=\?utf-8\?q\?([^?]*)\?=")
# a title is one line: no control characters, no line or paragraph separators
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=250)


def written(**headers: object) -> bytes:
    msg = EmailMessage(policy=SMTP)
    for name, value in headers.items():
        msg[name] = value
    msg.set_content("x")
    return msg.as_bytes()


def check_shape(raw: bytes) -> None:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert all(len(line) <= 78 for line in head.split("\r\n")), head
    for payload in WORD.findall(head):
        assert len(payload) + 12 <= 75
        # whole characters only: each word decodes as UTF-8 on its own
        data = re.sub(r"=([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), payload.replace("_", " "))
        data.encode("latin-1").decode("utf-8")


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_any_subject_is_read_back_exactly(text):
    raw = written(Subject=unstructured("Subject", text))
    check_shape(raw)
    assert str(email.message_from_bytes(raw, policy=default)["Subject"]) == text


@settings(max_examples=200, deadline=None)
@given(TEXT.filter(lambda t: t.strip() == t and "  " not in t and len(t.encode()) <= 45
                   and all(c == " " or not c.isspace() for c in t)))
def test_any_display_name_is_read_back_exactly(name):
    """Names with single spaces: readers collapse the whitespace in a phrase (RFC 5322 §3.2.5
    reads it as folding), so a doubled or unusual space is not a name's to keep. Up to 45
    bytes of UTF-8 (one encoded word): Python's address parser adds a space between two
    adjacent encoded words of a phrase, which RFC 2047 §6.2 says to ignore."""
    raw = written(To=mailbox("To", name, "milja@example.fi"))
    check_shape(raw)
    [address] = email.message_from_bytes(raw, policy=default)["To"].addresses
    assert (address.display_name, address.addr_spec) == (name, "milja@example.fi")


def test_plain_ascii_stays_readable_and_folds_only_at_spaces():
    text = "Kick-off for all municipalities " * 4
    raw = written(Subject=unstructured("Subject", text.strip()))
    assert b"=?" not in raw.split(b"\r\n\r\n", 1)[0]
    check_shape(raw)
    assert str(email.message_from_bytes(raw, policy=default)["Subject"]) == text.strip()
