"""`serve` and `run` stop on SIGINT and SIGTERM while a load generator keeps them busy.

Busy means: keep-alive clients requesting the page and a large feed as fast as they can,
and clients that pipeline requests for the feed and never read, so that worker threads
wait to write. The processes are started with SIGINT ignored, as a background job of a
non-interactive shell inherits it (how CI and scripts run the test suite): before the
fix, `serve` relied on Python's KeyboardInterrupt, which such a process never gets, and
did not stop at all. The test asserts that the process exits, cleanly, on the signal;
how fast is the benchmark's business.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.fixtures.common import ROOT


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start(command: str, tmp_path, programme) -> tuple[subprocess.Popen, str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    env.update(KLASH_STATE_DIR=str(tmp_path / "state"), KLASH_PORT="0", KLASH_PROGRAMME=str(programme),
               KLASH_EMBEDDED_CALDAV="false")
    proc = subprocess.Popen([sys.executable, "-m", "klash_sync", command], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_ignore_sigint)
    lines: list[str] = []
    found = threading.Event()

    def pump() -> None:  # keep reading: a full pipe would block the process, not our code
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if re.search(r"(listening on|serving feeds on) http://", line):
                found.set()

    threading.Thread(target=pump, daemon=True).start()
    assert found.wait(60), "".join(lines)
    url = re.search(r"(?:listening on|serving feeds on) (http://\S+)", "".join(lines)).group(1)  # type: ignore[union-attr]
    return proc, url, lines


class Load:
    """Keep-alive clients in a loop, and pipelining clients that never read."""

    def __init__(self, url: str, *, busy: int = 24, stuck: int = 16) -> None:
        self.host, port = url.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        self.stop = threading.Event()
        self.answered = 0
        self.threads = [threading.Thread(target=self._busy, daemon=True) for _ in range(busy)]
        self.stuck: list[socket.socket] = []
        for thread in self.threads:
            thread.start()
        request = b"GET /feeds/programme.ics HTTP/1.1\r\nHost: x\r\n\r\n" * 20
        for _ in range(stuck):
            s = socket.create_connection((self.host, self.port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(request)
            self.stuck.append(s)

    def _busy(self) -> None:
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                for path in ("/", "/feeds/programme.ics") * 50:
                    if self.stop.is_set():
                        break
                    conn.request("GET", path)
                    conn.getresponse().read()
                    self.answered += 1
                conn.close()
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)  # the server is going away: try again until told to stop

    def close(self) -> None:
        self.stop.set()
        for s in self.stuck:
            s.close()
        for thread in self.threads:
            thread.join(15)


@pytest.fixture(scope="module")
def big_programme(tmp_path_factory):
    from bench.__main__ import programme_text

    path = tmp_path_factory.mktemp("big") / "programme.toml"
    path.write_text(programme_text(600, 40), encoding="utf-8")
    return path


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", ["serve", "run"])
def test_stops_on_signal_under_load(tmp_path, big_programme, command, sig):
    proc, url, lines = start(command, tmp_path, big_programme)
    load = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # `run` loads the programme just after binding
            try:
                conn = http.client.HTTPConnection(url.removeprefix("http://").rsplit(":", 1)[0],
                                                  int(url.rsplit(":", 1)[1]), timeout=10)
                conn.request("GET", "/feeds/programme.ics")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        load = Load(url)
        wait_until = time.monotonic() + 60
        while load.answered < 50 and time.monotonic() < wait_until:
            time.sleep(0.05)
        assert load.answered >= 50, "the load generator got no answers"
        proc.send_signal(sig)
        code = proc.wait(timeout=60)  # a hang fails here
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if load is not None:
            load.close()
    log = "".join(lines)
    assert code == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
