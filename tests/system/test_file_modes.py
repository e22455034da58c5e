"""Started under `umask 000`, the service still makes everything it keeps its user's alone.

Real processes (`sync`, `accounts`, `run` with the embedded CalDAV server and a hand-over,
`KLASH_SITE_DIR`), each started with umask 000; then the state directory is walked: every
folder 0700 and every file 0600 or narrower (the store and its -wal and -shm, the lock,
the last good programme, the requests, Radicale's calendars, the logins and rights). The
static site is meant to be served by another user, so it is exactly 0755 and 0644.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.caldav_world import ENV
from tests.fixtures.common import ROOT, SHIPPED, fetch
from tests.fixtures.processes import start_daemon, wait_for

PUBLIC = "https://klash.example.fi"
SECRET = "file-modes-secret-0123456789abcdef"
HANDED_OVER = "klash-sync run holds the state directory; handed over to it, waiting for the result"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _umask_000() -> None:
    os.umask(0)


def command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "klash_sync", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=120, check=False,
                          preexec_fn=_umask_000)


def too_open(root: Path) -> list[str]:
    """Every folder and file under ``root`` (and ``root``) that others could read or write."""
    found = []
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        if st.st_mode & 0o077:
            found.append(f"{oct(st.st_mode & 0o777)} {path.relative_to(root.parent)}")
    return found


def test_everything_kept_is_private_under_umask_000(tmp_path):
    programme = tmp_path / "programme.toml"
    shutil.copy(SHIPPED, programme)
    state = tmp_path / "state"  # where start_daemon puts it
    site = tmp_path / "www" / "site"
    env = {"KLASH_PROGRAMME": str(programme), "KLASH_STATE_DIR": str(state),
           "KLASH_PUBLIC_URL": PUBLIC, "KLASH_PRIVATE_FEEDS": "true", "KLASH_SECRET": SECRET,
           **ENV}
    done = command(env, "sync")
    assert done.returncode == 0, done.stdout + done.stderr
    done = command(env, "accounts")
    assert done.returncode == 0, done.stdout + done.stderr
    assert too_open(state) == []

    old = os.umask(0)  # inherited by the daemon's process
    try:
        daemon = start_daemon(tmp_path, programme, KLASH_PUBLIC_URL=PUBLIC, KLASH_PRIVATE_FEEDS="true",
                              KLASH_SECRET=SECRET, KLASH_SITE_DIR=str(site))
    finally:
        os.umask(old)
    try:
        wait_for(lambda: fetch(daemon.url, "/healthz").status == 200, 30, "started")
        wait_for(lambda: (site / "index.html").is_file(), 30, "the site at start")
        done = command(env, "accounts", "--reset", "milja-kopsi")
        assert done.returncode == 0, done.stdout + done.stderr
        assert HANDED_OVER in done.stderr
        kept = {p.name for p in state.rglob("*")}
        for name in ("state.sqlite3", "state.sqlite3-wal", "state.sqlite3-shm", "klash-sync.lock",
                     "programme.last-good.toml", "requests", "htpasswd", "rights", "collections"):
            assert name in kept, (name, sorted(kept))
        assert too_open(state) == []
        # The site: served by another user, so readable by all, and writable by none.
        for path in [site.resolve(), *site.resolve().rglob("*")]:
            mode = path.lstat().st_mode
            assert stat.S_IMODE(mode) == (0o755 if stat.S_ISDIR(mode) else 0o644), path
    finally:
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=20) == 0, daemon.log()
    assert too_open(state) == []
