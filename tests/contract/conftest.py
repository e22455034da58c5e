"""The contract suites' receivers: servers started once per module, each by its one helper or
fixture (Cyrus: ``cyrus`` in tests/conftest.py), shared by the module's tests (every test
works in a calendar or on events of its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.calendar_backends import CalendarBackend, cyrus_backend, dav_backend, memory_backend
from tests.fixtures.mail_receivers import CyrusMailbox, SmtpMailbox
from tests.fixtures.memory_calendar import MemoryServer
from tests.fixtures.servers import start_radicale, start_xandikos
from tests.fixtures.smtp_server import SmtpServer


@pytest.fixture(scope="module", params=["memory", "radicale", "xandikos", "cyrus"])
def backend(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[CalendarBackend]:
    """The CalDAV calendar adapter's contract runs on each of these, the same tests on each."""
    kind = request.param
    if kind == "memory":
        yield memory_backend(MemoryServer())
    elif kind == "cyrus":
        yield cyrus_backend(request.getfixturevalue("cyrus"), "milja")
    else:
        start = start_radicale if kind == "radicale" else start_xandikos
        server = start(tmp_path_factory.mktemp(kind))
        yield dav_backend(server)
        server.stop()


@pytest.fixture(params=["smtp", "cyrus"])
def mailbox(request: pytest.FixtureRequest, smtp: SmtpServer) -> SmtpMailbox | CyrusMailbox:
    """The e-mail channel's contract runs on each receiver, the same tests on each."""
    if request.param == "smtp":
        return SmtpMailbox(smtp)
    return CyrusMailbox(smtp, request.getfixturevalue("cyrus"))
