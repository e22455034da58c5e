"""Header values written by hand (RFC 2047 encoded words, RFC 5322 folding), exact for every decoder.

Python's e-mail header folding loses or doubles the space between an ASCII word and an
encoded word in some titles (9 of 54 Finnish, Swedish and emoji titles in the issue's
sample): the reader then shows a title that is not the one the organiser wrote. So a
value that is not plain ASCII is written here as encoded words (``=?utf-8?q?…?=``) that
carry every character, spaces included (as ``_``): RFC 2047 §6.2 has decoders ignore the
whitespace between adjacent encoded words, so folding between them adds nothing and
takes nothing away. A word is split only between characters (never inside a UTF-8
sequence, §5), is at most 75 characters long (§2), and each line at most 78 (RFC 5322
§2.1.1). A plain ASCII value is folded only at its single spaces, which unfolding
restores.

``Written`` is the value as the email package stores it: a ``str`` of what a reader sees,
folded by us when the message is written out (the package uses a stored value's own
``fold``), so ``msg["Subject"]`` still reads as the title.
"""

from __future__ import annotations

import base64
import re
from email.policy import Policy

MAX_WORD = 75  # RFC 2047 §2: an encoded word, "=?utf-8?q?" and "?=" included
MAX_LINE = 78  # RFC 5322 §2.1.1
_OPEN, _CLOSE = "=?utf-8?q?", "?="
# RFC 2047 §5 (3): the characters a Q-encoded word may carry as they are in any header
# position, a phrase included (From and To display names)
_SAFE = re.compile(r"[A-Za-z0-9!*+/-]")
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+( [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


class Written(str):
    """A header value as readers see it (the ``str``), folded by us when the message is written."""

    name: str
    folded: str  # the value as written, lines joined by "\n " (the policy's line end is used)

    def __new__(cls, name: str, shown: str, folded: str) -> Written:
        value = super().__new__(cls, shown)
        value.name = name
        value.folded = folded
        return value

    def __reduce__(self) -> tuple[type[Written], tuple[str, str, str]]:  # copy.deepcopy
        return (Written, (self.name, str(self), self.folded))

    def fold(self, *, policy: Policy) -> str:
        end = policy.linesep
        return f"{self.name}: {self.folded.replace(chr(10), end)}{end}"


def _q(char: str) -> str:
    if char == " ":
        return "_"
    if _SAFE.fullmatch(char):
        return char
    return "".join(f"={b:02X}" for b in char.encode("utf-8"))


def encoded_words(text: str, first: int) -> list[str]:
    """``text`` as Q-encoded words, each ≤ 75 characters and the first ≤ ``first``."""
    words: list[str] = []
    payload = ""
    room = min(first, MAX_WORD) - len(_OPEN) - len(_CLOSE)
    for char in text:
        piece = _q(char)
        if payload and len(payload) + len(piece) > room:
            words.append(_OPEN + payload + _CLOSE)
            payload, room = "", MAX_WORD - len(_OPEN) - len(_CLOSE)
        payload += piece
    if payload or not words:
        words.append(_OPEN + payload + _CLOSE)
    return words


def _phrase_words(text: str, first: int) -> list[str]:
    """A display name as one encoded word when it fits (Q, or the denser B): Python's address
    parser puts a space between two adjacent encoded words of a phrase, against RFC 2047
    §6.2, so a name is split into several only when it is longer than one word holds."""
    q = encoded_words(text, first)
    if len(q) == 1:
        return q
    b = "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="
    return [b] if len(b) <= min(first, MAX_WORD) else q


def _join(name: str, tokens: list[str]) -> str:
    """The tokens on lines of at most 78 characters, one space (or a fold) between two."""
    lines: list[str] = []
    line = ""
    used = len(name) + 2  # "Subject: "
    for token in tokens:
        if not line:
            line = token
        elif used + len(line) + 1 + len(token) <= MAX_LINE:
            line += " " + token
        else:
            lines.append(line)
            line, used = token, 1  # a folded line starts with one space
    lines.append(line)
    return "\n ".join(lines)


def _plain(text: str) -> bool:
    """Text that can be written as it is: printable ASCII words with single spaces between."""
    return (text.isascii() and text.isprintable() and "=?" not in text and text == text.strip()
            and "  " not in text and all(len(w) <= MAX_LINE - 10 for w in text.split(" ")))


def unstructured(name: str, text: str) -> Written:
    """An unstructured header (Subject): plain when it can be, else encoded words only."""
    if _plain(text):
        return Written(name, text, _join(name, text.split(" ")))
    first = MAX_LINE - len(name) - 2
    return Written(name, text, _join(name, encoded_words(text, first)))


def mailbox(name: str, display: str, address: str) -> Written:
    """An address header (From, To) with one mailbox: ``Display Name <address>``.

    A display name of atoms is written as it is, any other as encoded words (a phrase may
    be one, RFC 2047 §5 (3)); an empty one is left out. The address is written as it is:
    a UTF-8 one only goes to a server that announced SMTPUTF8 (RFC 6532).
    """
    if not display:
        return Written(name, address, address)
    if _ATOM_PHRASE.fullmatch(display):
        tokens = [*display.split(" "), f"<{address}>"]
    else:
        tokens = [*_phrase_words(display, MAX_LINE - len(name) - 2), f"<{address}>"]
    return Written(name, f"{display} <{address}>", _join(name, tokens))
