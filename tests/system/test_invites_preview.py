"""The preview is the message: `klash-sync invites --messages DIR` writes exactly what
`invites --send` then hands to the SMTP server (aiosmtpd, see smtp_server.py), byte for
byte but the Date header, also on a first run on a fresh state directory
and after an edit. An edit's SEQUENCE and stamps are fixed when it is recorded, so the
preview records an edit first (nothing is sent), or, beside the running daemon, waits for
the daemon to record it (at most KLASH_DEBOUNCE and a few seconds, then says so).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fixtures.common import run_cli
from tests.fixtures.invite_helpers import header, session, timed
from tests.fixtures.processes import start_daemon, stop, wait_for

Y = datetime.now(UTC).year + 1


def programme(*, summer: str = f"{Y}-07-02", winter: bool = True, ulla_on_summer: bool = True) -> str:
    text = header() + session("summer", timed(summer, "10:00", "12:00"),
                              ["milja-kopsi", "ulla-nord"] if ulla_on_summer else ["milja-kopsi"])
    text += session("allday", f"date = {Y}-03-10", ["ulla-nord"])
    if winter:
        text += session("winter", timed(f"{Y}-01-15", "10:00", "11:30"), ["milja-kopsi", "ulla-nord"])
    return text


def without_date(raw: bytes) -> bytes:
    """The message but its Date header (the moment of sending; Message-ID is the same too)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    kept = [line for line in head.split(b"\r\n") if not line.startswith(b"Date: ")]
    return b"\r\n".join(kept) + b"\r\n\r\n" + body


def store_digest(state: Path) -> str:
    files = sorted(p for p in state.iterdir() if p.name.startswith("state.sqlite3"))
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()


class Rig:
    def __init__(self, tmp_path: Path, smtp) -> None:
        self.tmp, self.smtp, self.seen, self.previews = tmp_path, smtp, 0, 0
        self.path, self.state = tmp_path / "programme.toml", tmp_path / "state"
        self.env = {**smtp.env(), "KLASH_PROGRAMME": str(self.path), "KLASH_STATE_DIR": str(self.state),
                    "KLASH_DEBOUNCE": "1"}

    def preview(self, **env: str):
        """`invites --messages DIR`: its result and the messages it wrote, in order."""
        self.previews += 1
        folder = self.tmp / f"preview{self.previews}"
        result = run_cli("invites", "--messages", str(folder), env={**self.env, **env})
        written = [p.read_bytes() for p in sorted(folder.iterdir())] if folder.exists() else []
        return result, written

    def send(self) -> list[bytes]:
        result = run_cli("invites", "--send", env=self.env)
        assert result.code == 0, result.out + result.err
        got = self.smtp.handler.messages()[self.seen:]
        self.seen += len(got)
        return [m.raw for m in got]

    def same(self, written: list[bytes], sent: list[bytes]) -> None:
        assert written, "the preview wrote no message"
        assert [without_date(m) for m in written] == [without_date(m) for m in sent]


# With a secret and a public address, each invitation carries the mentor's answer links
# (web/tokens.answer_links): the preview must carry the very same ones.
LINKS = {"KLASH_SECRET": "preview-secret-0123456789abcdef", "KLASH_PUBLIC_URL": "https://klash.example.fi"}


@pytest.mark.parametrize("extra", [{}, LINKS], ids=["plain", "answer-links"])
def test_a_first_preview_records_the_programme_and_shows_what_is_then_sent(tmp_path, smtp, extra):
    rig = Rig(tmp_path, smtp)
    rig.env.update(extra)
    rig.path.write_text(programme(), encoding="utf-8")
    result, written = rig.preview()  # a fresh state directory: nothing recorded yet
    assert result.code == 0, result.out + result.err
    assert all((b"https://klash.example.fi/rsvp/" in m) == bool(extra) for m in written
               if b"METHOD:REQUEST" in m)
    assert "as the current revision; nothing sent" in result.out
    assert "recorded the edit of " in result.out
    assert rig.smtp.handler.messages() == []  # the preview sends nothing
    assert len(written) == 5
    # a preview of a recorded programme writes nothing at all
    before = store_digest(rig.state)
    again, rewritten = rig.preview()
    assert "recorded the edit" not in again.out
    assert store_digest(rig.state) == before
    assert [without_date(m) for m in rewritten] == [without_date(m) for m in written]
    rig.same(written, rig.send())

    # an edit after the first send: a reschedule, Ulla taken off, a session removed
    rig.path.write_text(programme(summer=f"{Y}-07-09", winter=False, ulla_on_summer=False),
                        encoding="utf-8")
    result, written = rig.preview()
    assert result.code == 0, result.out + result.err
    assert "as the current revision; nothing sent" in result.out
    assert len(written) == 4  # summer: an update and a CANCEL; winter: two CANCELs
    rig.same(written, rig.send())
    assert rig.preview()[1] == []
    assert rig.send() == []


def loaded(daemon) -> None:
    """The daemon has read the programme file (it listens first, then loads)."""
    wait_for(lambda: "programme loaded" in daemon.log(), 60, "the daemon's first load")


def test_beside_the_daemon_the_preview_waits_for_it_to_record_the_edit(tmp_path, smtp):
    rig = Rig(tmp_path, smtp)
    rig.path.write_text(programme(), encoding="utf-8")
    # the daemon records within a second of a save, and waits an hour before it mails
    daemon = start_daemon(tmp_path, rig.path, **{**rig.env, "KLASH_INVITE_DELAY": "3600"})
    loaded(daemon)
    try:
        result, written = rig.preview()  # right after the start, or while it records
        assert result.code == 0, result.out + result.err
        assert "recorded the edit" not in result.out  # the daemon did, not the preview
        rig.path.write_text(programme(summer=f"{Y}-07-16"), encoding="utf-8")
        result, written = rig.preview()  # saved a moment ago: waits for the daemon
        assert result.code == 0, result.out + result.err
        assert "has not recorded" not in result.out
        assert len(written) == 5
    finally:
        assert stop(daemon)[0] == 0, daemon.log()
    assert rig.smtp.handler.messages() == []
    rig.same(written, rig.send())

    # a daemon that records only after 60 quiet seconds: the preview says so, and stops
    daemon = start_daemon(tmp_path, rig.path, **{**rig.env, "KLASH_INVITE_DELAY": "3600",
                                                 "KLASH_DEBOUNCE": "60"})
    loaded(daemon)
    try:
        rig.path.write_text(programme(summer=f"{Y}-07-23"), encoding="utf-8")
        result, written = rig.preview()  # the command's own KLASH_DEBOUNCE is 1 s: 6 s at most
        assert result.code == 1, result.out + result.err
        assert "the running daemon has not recorded the edit of " in result.out
        assert written == []
    finally:
        assert stop(daemon)[0] == 0, daemon.log()
