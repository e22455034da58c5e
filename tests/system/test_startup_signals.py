"""A reload sent while `klash-sync run` is still starting never ends it, under systemd or Docker.

Python installs no signal handler until its interpreter has started and imported our
code; in that window SIGHUP's default action ends a process. The two ways operators run
the service each close that window, and these tests try both for real:

* **systemd** (`Type=notify`, deploy/klash-sync.service) counts the service as started
  only when it says `READY=1` on `$NOTIFY_SOCKET`, and runs `ExecReload` only after that.
  The test is systemd's side of it: a datagram socket bound like systemd's, which must
  receive `READY=1` only once `/healthz` answers (so the handlers are long in place), and
  `STOPPING=1` at SIGTERM.
* **Docker** runs the service as PID 1 of its own PID namespace, and the kernel drops
  every signal sent to such a process (but SIGKILL and SIGSTOP) for which it has no
  handler (pid_namespaces(7)). The test runs `klash-sync run` as PID 1 of a new PID
  namespace (`unshare --pid --fork`, as root) and sends it SIGHUP from the start, without
  pause, until /healthz answers: it must still be running, then stop on SIGTERM with 0.
  The same flood, once the handlers were in place, used to end the process too: Python
  signal handlers nest between bytecodes, and each one's `Event.set` nested further until
  a RecursionError (more than 200,000 SIGHUPs, about four seconds); signals are now taken
  by a thread of their own with `sigwait` (web/server.stop_signals).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fixtures.caldav_world import ENV
from tests.fixtures.common import ROOT, SHIPPED, fetch
from tests.fixtures.processes import spawn_daemon, wait_for


def _healthz(url: str) -> int | None:
    try:
        return fetch(url, "/healthz").status
    except OSError:
        return None


def test_ready_is_told_to_systemd_only_once_healthz_answers_and_stopping_at_sigterm(tmp_path):
    where = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(where))
    sock.settimeout(60)
    running = spawn_daemon(tmp_path, SHIPPED, NOTIFY_SOCKET=str(where), KLASH_EMBEDDED_CALDAV="false")
    try:
        first = sock.recv(4096)
        assert first == b"READY=1", running.log()
        assert running.url, "READY=1 came before the port was bound:\n" + running.log()
        assert _healthz(running.url) == 200, running.log()
        running.proc.send_signal(signal.SIGTERM)
        assert sock.recv(4096) == b"STOPPING=1"
        assert running.proc.wait(timeout=15) == 0, running.log()
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()
        sock.close()


def _child_of(pid: int) -> int | None:
    """The one child of ``pid`` (unshare's: PID 1 of the new namespace), by its host PID."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def test_as_pid_1_of_its_namespace_a_sighup_while_python_starts_is_dropped(tmp_path):
    assert os.geteuid() == 0, "a new PID namespace needs root (CI runs the tests as root)"
    assert shutil.which("unshare"), "unshare (util-linux) is required"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    env.update({**ENV, "KLASH_PROGRAMME": str(SHIPPED), "KLASH_STATE_DIR": str(tmp_path / "state"),
                "KLASH_PORT": "0", "KLASH_EMBEDDED_CALDAV": "false"})
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-m",
                             "klash_sync", "run"], cwd=ROOT, env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    try:
        child = None
        deadline = time.monotonic() + 30
        while child is None and time.monotonic() < deadline:
            child = _child_of(proc.pid)
        assert child is not None, "unshare started no child"
        assert Path(f"/proc/{child}/status").read_text().count("NSpid:") == 1
        nspid = next(line for line in Path(f"/proc/{child}/status").read_text().splitlines()
                     if line.startswith("NSpid:"))
        assert nspid.split()[-1] == "1", nspid  # PID 1 inside, as in a container
        sent = 0

        def pump() -> None:
            for line in proc.stderr:  # type: ignore[union-attr]
                lines.append(line)

        threading.Thread(target=pump, daemon=True).start()
        url = ""
        deadline = time.monotonic() + 60
        while not url and proc.poll() is None and time.monotonic() < deadline:
            try:
                os.kill(child, signal.SIGHUP)  # from the first moment: no pause
            except ProcessLookupError:
                time.sleep(0.5)
                pytest.fail(f"ended by one of {sent} SIGHUPs, exit {proc.poll()}:\n{''.join(lines)}")
            sent += 1
            found = re.search(r"listening on (http://\S+)", "".join(lines))
            url = found.group(1) if found else ""
        assert proc.poll() is None, f"ended by one of {sent} SIGHUPs:\n{''.join(lines)}"
        wait_for(lambda: _healthz(url) == 200, 30, "/healthz answering")
        assert sent > 10
        os.kill(child, signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.2)  # the pump reads the last lines
    log = "".join(lines)
    assert "Traceback" not in log, log


@pytest.mark.parametrize("value", ["relative.sock", "/nonexistent/dir/notify.sock"])
def test_a_notify_socket_that_cannot_be_used_is_logged_and_the_service_runs(tmp_path, value):
    running = spawn_daemon(tmp_path, SHIPPED, NOTIFY_SOCKET=value, KLASH_EMBEDDED_CALDAV="false")
    try:
        assert running.listening.wait(30), running.log()
        wait_for(lambda: "not telling systemd READY=1" in running.log()
                 or "could not tell systemd READY=1" in running.log(), 30, "the warning")
        assert _healthz(running.url) == 200
    finally:
        running.proc.send_signal(signal.SIGTERM)
        code = running.proc.wait(timeout=15)
    assert code == 0, running.log()
