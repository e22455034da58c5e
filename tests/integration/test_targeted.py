"""An edit reaches the calendars it concerns first, and only those, until the periodic pass.

The daemon runs in-process on a fake clock against real Radicale servers, one per
mentor, so "requests to that mentor's server" are counted at that server. A job is
held in flight by holding its request at the server (a real request, really waiting),
which is how an edit is made to land in the middle of a running job or pass.
"""

from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path

import pytest

from klash_sync.clock import FakeClock
from klash_sync.service.daemon import Daemon
from klash_sync.settings import Settings
from tests.fixtures.caldav_world import ENV
from tests.fixtures.daemon_rig import edit, settle
from tests.fixtures.servers import DavServer, start_radicale

MENTORS = 5


def programme(servers: list[DavServer], dates: dict[int, str] | None = None) -> str:
    """Mentor m<i> on server i, alone in session s<i>; ``dates`` moves sessions."""
    dates = dates or {}
    text = '[programme]\nname = "Testi"\nuid_domain = "klash.test"\norganiser = "Kuntaliitto"\n'
    for i, server in enumerate(servers):
        text += (f'\n[[mentors]]\nid = "m{i}"\nname = "M{i}"\n[mentors.caldav]\n'
                 f'url = "{server.base}/alice/"\nusername = "alice"\npassword_env = "PW_ALICE"\n')
    for i in range(len(servers)):
        text += (f'\n[[sessions]]\nid = "s{i}"\ntitle = "S{i}"\ndate = {dates.get(i, "2019-10-01")}\n'
                 f'mentors = ["m{i}"]\n')
    return text


class Bodies:
    """WSGI middleware in front of a server's recorder: keeps every PUT body, in order."""

    def __init__(self, server: DavServer) -> None:
        self.inner = server.recorder.app
        self.puts: list[bytes] = []
        server.recorder.app = self

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "PUT":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            self.puts.append(body)
            environ["wsgi.input"] = io.BytesIO(body)
        return self.inner(environ, start_response)

    def dates(self) -> list[str]:
        return [re.search(rb"DTSTART;VALUE=DATE:(\d+)", b).group(1).decode() for b in self.puts]


class Hold:
    """Holds the first matching request at the server until released (bounded)."""

    def __init__(self, server: DavServer, method: str) -> None:
        self.method = method
        self.entered = threading.Event()
        self.release = threading.Event()
        self.armed = True
        server.recorder.on_request = self

    def __call__(self, method: str, path: str) -> None:
        if self.armed and method == self.method:
            self.armed = False
            self.entered.set()
            self.release.wait(20)

    def wait_entered(self, daemon: Daemon) -> None:
        deadline = time.monotonic() + 20
        while not self.entered.is_set():
            assert time.monotonic() < deadline, "the held request never came"
            daemon.tick()
            time.sleep(0.01)


@pytest.fixture
def rig(tmp_path: Path, request):
    workers = getattr(request, "param", 4)
    servers = [start_radicale(tmp_path / f"radicale{i}") for i in range(MENTORS)]
    path = tmp_path / "programme.toml"
    path.write_text(programme(servers))
    clock = FakeClock()
    settings = Settings(programme=path, state_dir=tmp_path / "state", host="127.0.0.1", port=0,
                        embedded_caldav=False, request_timeout=5, sync_interval=300, debounce=1.0,
                        sync_workers=workers, _env_file=None)  # type: ignore[call-arg]
    daemon = Daemon(settings, clock=clock, environ=ENV)
    daemon.start()
    settle(daemon)
    for server in servers:
        server.recorder.reset()
    yield daemon, clock, servers, path
    daemon.stop()
    for server in servers:
        server.stop()


def test_an_edit_reaches_only_the_server_of_the_mentor_it_concerns(rig):
    daemon, clock, servers, path = rig
    edit(daemon, path, programme(servers, {3: "2019-10-03"}), clock)
    clock.advance(1.0)
    settle(daemon)
    assert servers[3].recorder.count(methods={"PUT"}) == 1
    for i, server in enumerate(servers):
        if i != 3:
            assert server.recorder.count() == 0, (i, server.recorder.requests)
    # The periodic pass still visits every calendar.
    clock.advance(300)
    settle(daemon)
    assert all(server.recorder.count(methods={"PROPFIND"}) >= 1 for server in servers)


def test_an_edit_during_a_running_job_is_written_by_the_next_job_never_overwritten(rig):
    daemon, clock, servers, path = rig
    bodies = Bodies(servers[2])
    hold = Hold(servers[2], "PUT")
    edit(daemon, path, programme(servers, {2: "2019-10-02"}), clock)
    clock.advance(1.0)
    hold.wait_entered(daemon)  # m2's job is in flight, writing 2019-10-02
    before = daemon.live.snapshot
    edit(daemon, path, programme(servers, {2: "2019-10-22"}), clock)
    deadline = time.monotonic() + 10
    while daemon.live.snapshot is before:  # the reload happens while the job is still running
        assert time.monotonic() < deadline, "the edit was not applied"
        clock.advance(1.0)  # (again if a late file event restarted the quiet period)
        daemon.tick()
    assert not hold.release.is_set()
    assert daemon.inflight
    hold.release.set()
    settle(daemon)
    assert bodies.dates() == ["20191002", "20191022"], "exactly one more job, never a stale write after"
    # Two jobs for that calendar in all: one listing each.
    assert servers[2].recorder.count(methods={"PROPFIND"}) == 2
    for i, server in enumerate(servers):
        if i != 2:
            assert server.recorder.count() == 0, (i, server.recorder.requests)


@pytest.mark.parametrize("rig", [1], indirect=True)
def test_an_edit_mid_pass_goes_ahead_of_the_rest_of_the_pass(rig):
    daemon, clock, servers, path = rig
    order: list[int] = []
    hold = Hold(servers[0], "PROPFIND")
    for i, server in enumerate(servers):
        server.recorder.on_request = lambda method, p, i=i: (order.append(i), i == 0 and hold(method, p))
    clock.advance(300)  # the periodic pass starts, with m0 (one worker)
    hold.wait_entered(daemon)
    edit(daemon, path, programme(servers, {4: "2019-10-04"}), clock)
    clock.advance(1.0)
    daemon.tick()
    hold.release.set()
    settle(daemon)
    assert order[0] == 0
    assert order[1] == 4, order  # the edited calendar right after the job that was running
    assert servers[4].recorder.count(methods={"PUT"}) == 1
    assert sorted(set(order)) == [0, 1, 2, 3, 4], "the pass itself still visits everyone"
