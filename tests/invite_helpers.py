"""Shared pieces of the invitation tests: a programme with invited mentors, and a reader
that takes a received e-mail apart with the email package and ical.js."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

import pytest

from .parsers import JS_DIR, node
from .smtp_server import Received, SmtpServer

ORGANISER_EMAIL = "klash@kuntaliitto.test"
ADDRESSES = {"milja-kopsi": "milja@example.test", "ulla-nord": "ulla@example.test",
             "pekka-puu": "pekka@example.test"}


def header(*, milja_email: str = ADDRESSES["milja-kopsi"]) -> str:
    return f"""
[programme]
name = "Testiohjelma"
timezone = "Europe/Helsinki"
uid_domain = "klash.test"
organiser = "Kuntaliitto"
organiser_email = "{ORGANISER_EMAIL}"

[[mentors]]
id = "milja-kopsi"
name = "Milja Köpsi"
email = "{milja_email}"
invite = true

[[mentors]]
id = "ulla-nord"
name = "Ulla Nord"
email = "{ADDRESSES['ulla-nord']}"
invite = true

[[mentors]]
id = "pekka-puu"
name = "Pekka Puu"
email = "{ADDRESSES['pekka-puu']}"
"""


def session(sid: str, when: str, mentors: list[str], *, title: str | None = None,
            status: str = "confirmed", location: str = "Vantaa") -> str:
    listed = ", ".join(f'"{m}"' for m in mentors)
    return (f'\n[[sessions]]\nid = "{sid}"\ntitle = "{title or sid.title()}"\n{when}\n'
            f'mentors = [{listed}]\nstatus = "{status}"\nlocation = "{location}"\n')


def timed(day: str, start: str, end: str) -> str:
    return f"start = {day}T{start}:00\nend = {day}T{end}:00"


@dataclass
class Invite:
    """One received invitation, as the email package and ical.js read it."""

    to: str
    method: str
    uid: str
    sequence: int
    start: str
    end: str
    status: str
    organizer: dict
    attendees: list[dict]
    message_id: str
    text: str


def read_itip(body: bytes) -> dict:
    proc = subprocess.run([node(), str(JS_DIR / "read_itip.mjs")], input=body, capture_output=True,
                          timeout=60, check=True)
    return json.loads(proc.stdout)


def read(received: Received) -> Invite:
    """Take one message apart; assert the shape every big client needs for an invitation."""
    msg = received.message
    assert msg.get_content_type() == "multipart/mixed"
    alternative, attachment = list(msg.iter_parts())
    assert alternative.get_content_type() == "multipart/alternative"
    parts = list(alternative.iter_parts())
    assert parts[0].get_content_type() == "text/plain"
    calendar = next(p for p in parts if p.get_content_type() == "text/calendar")
    assert calendar.get_content_charset() == "utf-8"
    body = calendar.get_payload(decode=True)
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_payload(decode=True) == body
    parsed = read_itip(body)
    header_method = calendar.get_param("method")
    assert parsed["method"] == header_method, "METHOD differs between Content-Type and body"
    assert msg["From"].addresses[0].addr_spec == ORGANISER_EMAIL
    assert len(parsed["events"]) == 1
    event = parsed["events"][0]
    assert received.recipients
    assert len(received.recipients) == 1
    return Invite(received.recipients[0], header_method, event["uid"], event["sequence"],
                  event["start"], event["end"], event["status"], event["organizer"],
                  event["attendees"], msg["Message-ID"], parts[0].get_content())


@pytest.fixture
def smtp(tmp_path):
    server = SmtpServer(tmp_path / "smtp")
    server.start()
    yield server
    server.stop()


def start_invite_daemon(tmp_path, smtp, text: str, *, delay: float):
    """A daemon on a FakeClock (2026-06-01 12:00 UTC) sending through ``smtp``, started and settled."""
    from datetime import UTC, datetime

    from klash_sync.clock import FakeClock
    from klash_sync.service.daemon import Daemon
    from klash_sync.settings import Settings

    from .smtp_server import PASSWORD, USERNAME
    from .test_daemon import settle

    path = tmp_path / "programme.toml"
    path.write_text(text, encoding="utf-8")
    clock = FakeClock(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    settings = Settings(programme=path, state_dir=tmp_path / "state", host="127.0.0.1", port=0,
                        embedded_caldav=False, request_timeout=3, unhealthy_after=60,
                        sync_interval=3600, debounce=1.0, retry_max=60, invite_delay=delay,
                        smtp_url=smtp.url, smtp_username=USERNAME, smtp_password=PASSWORD,
                        _env_file=None)  # type: ignore[call-arg]
    daemon = Daemon(settings, clock=clock)
    daemon.start()
    settle(daemon)
    return daemon, clock, path
