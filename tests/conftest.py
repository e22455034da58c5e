"""Shared pytest fixtures for every tier; their parts live in tests/fixtures/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.caldav_world import World, make_world
from tests.fixtures.cyrus_server import CyrusServer
from tests.fixtures.site import LiveServers
from tests.fixtures.smtp_server import SmtpServer


@pytest.fixture
def write_programme(tmp_path: Path):
    def write(text: str | bytes, name: str = "programme.toml") -> Path:
        path = tmp_path / name
        if isinstance(text, str):
            path.write_text(text, encoding="utf-8")
        else:
            path.write_bytes(text)
        return path
    return write


@pytest.fixture
def serve_live(tmp_path: Path) -> Iterator[LiveServers]:
    """Start our WSGI app under waitress on a free loopback port, in this process."""
    servers = LiveServers(tmp_path)
    yield servers
    servers.close()


@pytest.fixture(params=["radicale", "xandikos"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A real Radicale, then a real Xandikos, with a state store: the CalDAV push tests run on both."""
    yield from make_world(request.param, tmp_path)


@pytest.fixture(scope="module")
def cyrus() -> Iterator[CyrusServer]:
    """Cyrus IMAP with CalDAV and iMIP processing, for the mentors milja and ulla: one per
    module (it takes seconds to start), so a module's tests each use events of their own."""
    server = CyrusServer(["milja", "ulla"])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    """The test SMTP server (STARTTLS, AUTH) on a free loopback port."""
    server = SmtpServer(tmp_path / "smtp")
    server.start()
    yield server
    server.stop()
