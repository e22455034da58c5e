"""Only the operator can ask the running daemon: nothing else left in `requests/` steers,
blocks or crashes it.

Real processes: `klash-sync run` on a free port, the command line as an operator runs it,
and, where it matters who is who, the daemon as another user (uid 65534, through setpriv)
beside commands run as root. Files an outsider could leave in the folder are dropped
beside genuine requests: each is skipped with a log line and never acts, the genuine
requests are answered, and SIGTERM still ends the daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from klash_sync.service import control
from tests.fixtures.common import ROOT, SHIPPED, fetch
from tests.fixtures.processes import Running, as_user, start_daemon, wait_for

HANDED_OVER = "klash-sync run holds the state directory; handed over to it, waiting for the result"
NOBODY = 65534

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def command(state: Path, programme: Path, *args: str, user: int | None = None,
            ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    env.update(KLASH_PROGRAMME=str(programme), KLASH_STATE_DIR=str(state),
               KLASH_EMBEDDED_CALDAV="false")
    return subprocess.run([*as_user(user), sys.executable, "-m", "klash_sync", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def request_json(programme: Path, target: Path) -> str:
    """A well-formed `export --all TARGET` request for this programme, made now."""
    return json.dumps({"action": "export-all", "args": {"target": str(target)},
                       "made_at": time.time(),
                       "programme": control.digest(programme.read_bytes())})


def terminate(daemon: Running) -> int:
    """SIGTERM; the exit code. The daemon promises to be gone within 10 s."""
    daemon.proc.send_signal(signal.SIGTERM)
    try:
        return daemon.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        daemon.proc.kill()
        daemon.proc.wait(timeout=10)
        pytest.fail("the daemon did not end within 10 s of SIGTERM:\n" + daemon.log())


def test_nothing_else_in_the_folder_steers_blocks_or_crashes_the_daemon(tmp_path):
    programme = tmp_path / "programme.toml"
    shutil.copy(SHIPPED, programme)
    daemon = start_daemon(tmp_path, programme, KLASH_EMBEDDED_CALDAV="false")
    try:
        wait_for(lambda: fetch(daemon.url, "/healthz").status == 200, 30, "started")
        state = tmp_path / "state"
        where = control.folder(state)
        assert oct(where.stat().st_mode & 0o777) == "0o700"  # made by the daemon at start

        # Requests that would act if followed or read: behind a symlink, and of another user.
        bait = tmp_path / "bait.json"
        bait.write_text(request_json(programme, tmp_path / "by-symlink"))
        junk = {
            "symlink": lambda p: p.symlink_to(bait),
            "fifo": lambda p: os.mkfifo(p, 0o600),
            "dev-zero": lambda p: p.symlink_to("/dev/zero"),
            "ten-mb": lambda p: p.write_bytes(b" " * (10 * 1024 * 1024)),
            "list": lambda p: p.write_text("[]"),
            "invalid-json": lambda p: p.write_text("{'action': "),
            "wrong-types": lambda p: p.write_text(json.dumps(
                {"action": ["export-all"], "args": "x", "made_at": "now", "programme": 1})),
            "other-user": lambda p: (p.write_text(request_json(programme, tmp_path / "by-nobody")),
                                     os.chown(p, NOBODY, NOBODY)),
        }
        # Named to be taken before the genuine requests, in the same look into the folder.
        hidden = where / ".hidden"
        hidden.mkdir(mode=0o700)
        for n, (_, make) in enumerate(junk.items()):
            make(hidden / f"{n:032x}.request")
        # A name no command makes, with a log line of its own inside.
        (hidden / "x\n2026-01-01 00:00:00,000 INFO    forged.request").write_text(
            request_json(programme, tmp_path / "by-name"))

        # A genuine request whose answer file names are planted as symlinks to a victim.
        victim = tmp_path / "victim"
        victim.write_text("untouched\n")
        rid = "f" * 32
        (where / f".{rid}.done.tmp").symlink_to(victim)
        (where / f"{rid}.done").symlink_to(victim)
        for path in sorted(hidden.iterdir()):
            path.rename(where / path.name)  # all at once, beside each other
        hidden.rmdir()
        (where / f".{rid}.tmp").write_text(request_json(programme, tmp_path / "genuine"))
        (where / f".{rid}.tmp").chmod(0o600)
        (where / f".{rid}.tmp").rename(where / f"{rid}.request")

        # ... and one made by the command line, beside them.
        done = command(state, programme, "export", "--all", str(tmp_path / "by-command"))
        assert done.returncode == 0, done.stdout + done.stderr + daemon.log()
        assert HANDED_OVER in done.stderr
        assert "Traceback" not in done.stderr
        wait_for(lambda: (where / f"{rid}.done").is_file() and not (where / f"{rid}.done").is_symlink(),
                 30, "the answer to the request beside the planted symlinks")
        got = json.loads((where / f"{rid}.done").read_text())
        assert got["code"] == 0, got
        assert (tmp_path / "genuine").is_symlink()
        assert (tmp_path / "by-command").is_symlink()
        assert victim.read_text() == "untouched\n"
        assert not (tmp_path / "by-symlink").exists()
        assert not (tmp_path / "by-nobody").exists()

        log = daemon.log()
        for n, name in enumerate(junk):
            assert f"skipped a file in the requests folder, {n:032x}.request: " in log, (name, log)
        assert "'x\\n2026-01-01 00:00:00,000 INFO    forged.request': not a request's name" in log
        assert "\n2026-01-01 00:00:00,000 INFO    forged" not in log
        assert not (tmp_path / "by-name").exists()
        for n in range(len(junk)):  # none is left to be taken; the malformed ones, of root,
            for suffix in ("request", "taken"):  # are answered as such
                assert not os.path.lexists(where / f"{n:032x}.{suffix}")
        assert bait.exists()
        leftovers = {p.name for p in where.iterdir()} - {f"{rid}.done", f".{rid}.done.tmp"}
        assert all(p.endswith(".done") for p in leftovers), leftovers
        assert fetch(daemon.url, "/healthz").status == 200
    finally:
        code = terminate(daemon)
    assert code == 0, daemon.log()
    assert "Traceback" not in daemon.log(), daemon.log()


def test_a_folder_others_can_write_is_refused_with_what_to_run(tmp_path):
    programme = tmp_path / "programme.toml"
    shutil.copy(SHIPPED, programme)
    daemon = start_daemon(tmp_path, programme, KLASH_EMBEDDED_CALDAV="false")
    try:
        wait_for(lambda: fetch(daemon.url, "/healthz").status == 200, 30, "started")
        state = tmp_path / "state"
        where = control.folder(state)
        target = tmp_path / "site"
        for change, fix in ((lambda: where.chmod(0o770), f"chmod 700 {where}"),
                            (lambda: os.chown(where, NOBODY, NOBODY), f"chown -R root {where}")):
            change()
            done = command(state, programme, "export", "--all", str(target))
            assert done.returncode == 2, done.stdout + done.stderr
            [line] = done.stderr.strip().splitlines()
            assert line.startswith("klash-sync: "), line
            assert fix in line, line
            assert not target.exists()
            wait_for(lambda fix=fix: fix in daemon.log(), 10, "the daemon's word on the folder")
            os.chown(where, 0, 0)
            where.chmod(0o700)
        assert daemon.log().count(f"chmod 700 {where}") == 1  # said once, not every second
        done = command(state, programme, "export", "--all", str(target))
        assert done.returncode == 0, done.stdout + done.stderr
        assert target.is_symlink()
    finally:
        code = terminate(daemon)
    assert code == 0, daemon.log()
    assert "Traceback" not in daemon.log(), daemon.log()


def test_the_service_user_and_root_may_ask_and_a_folder_left_by_root_is_reported():
    """The daemon runs as uid 65534: root's request is handed to it; another user's command
    is told whom to run as; a `requests/` left by root is reported with the chown to run."""
    base = Path(tempfile.mkdtemp(prefix="klash-requests-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        programme = base / "programme.toml"
        shutil.copy(SHIPPED, programme)
        os.chmod(programme, 0o644)
        (base / "state").mkdir(mode=0o700)
        os.chown(base / "state", NOBODY, NOBODY)
        site = base / "www"
        site.mkdir(mode=0o755)
        os.chown(site, NOBODY, NOBODY)
        daemon = start_daemon(base, programme, user=NOBODY, KLASH_EMBEDDED_CALDAV="false")
        state = base / "state"
        where = control.folder(state)
        try:
            wait_for(lambda: fetch(daemon.url, "/healthz").status == 200, 30, "started")
            assert where.stat().st_uid == NOBODY
            # Root asks: the request is handed to the daemon's user, and carried out.
            done = command(state, programme, "export", "--all", str(site / "by-root"))
            assert done.returncode == 0, done.stdout + done.stderr + daemon.log()
            assert HANDED_OVER in done.stderr
            assert (site / "by-root").is_symlink()
            # The service's own user asks.
            done = command(state, programme, "export", "--all", str(site / "by-service"),
                           user=NOBODY)
            assert done.returncode == 0, done.stdout + done.stderr + daemon.log()
            # Another user is told, in one line, whom to run as (the lock already stops it
            # when it cannot open the state directory).
            done = command(state, programme, "export", "--all", str(site / "by-other"), user=1234)
            assert done.returncode == 2, done.stdout + done.stderr
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
            assert "Traceback" not in done.stderr
            assert not (site / "by-other").exists()
            # requests/ left by a run as root (an older release made it so).
            shutil.rmtree(where)
            where.mkdir(mode=0o700)
            done = command(state, programme, "export", "--all", str(site / "after-root"),
                           user=NOBODY)
            assert done.returncode == 2, done.stdout + done.stderr
            [line] = done.stderr.strip().splitlines()
            assert f"chown -R nobody {where}" in line, line
            assert not (site / "after-root").exists()
            os.chown(where, NOBODY, NOBODY)
            done = command(state, programme, "export", "--all", str(site / "after-root"),
                           user=NOBODY)
            assert done.returncode == 0, done.stdout + done.stderr + daemon.log()
        finally:
            code = terminate(daemon)
        assert code == 0, daemon.log()
        assert "Traceback" not in daemon.log(), daemon.log()
    finally:
        shutil.rmtree(base, ignore_errors=True)

