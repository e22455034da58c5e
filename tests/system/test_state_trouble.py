"""The running service when its state store cannot be written: it says so, and loses no edit.

Two real causes, each made for real: the state directory on a small tmpfs that is then
filled to the last byte (mounted by the test, which CI runs as root), and the database
held under ``BEGIN EXCLUSIVE`` by another process (what a backup tool or an ``sqlite3``
shell does). In both, an edit of the programme must not be applied while the store
cannot be written, /healthz must say degraded (which part, since when) within a pass,
the feeds must still be served, and once the store can be written again the edit must
be applied with no restart and no second edit, its change-log entry with it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.common import ROOT, fetch
from tests.fixtures.processes import Running, start_daemon, stop, wait_for

OLD = "Klash-mentorointi: Nuoret opintopolulle"
NEW = "Klash-mentorointi: Nuoret opintopolulle (sali 2)"


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/state`` as its own 8 MiB tmpfs, unmounted afterwards whatever happened."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(state)], check=True)
    try:
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def fill(volume: Path) -> Path:
    """Write until the file system refuses another byte; return the file that took the space."""
    filler = volume / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for size in (65536, 4096, 512, 1):  # to the last page
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    with pytest.raises(OSError, match="No space left") as full:
        (volume / "one-more").write_bytes(b"x")
    assert full.value.errno == errno.ENOSPC
    return filler


def feed(daemon: Running) -> str:
    got = fetch(daemon.url, "/feeds/programme.ics")
    assert got.status == 200
    return got.body.decode()


def healthz(daemon: Running) -> tuple[int, dict]:
    got = fetch(daemon.url, "/healthz")
    return got.status, json.loads(got.body)


def parts(daemon: Running) -> set[str]:
    return {p["part"] for p in healthz(daemon)[1]["problems"]}


def started(tmp_path: Path) -> tuple[Running, Path]:
    path = tmp_path / "programme.toml"
    shutil.copy(ROOT / "config" / "programme.toml", path)
    assert OLD in path.read_text(encoding="utf-8")
    daemon = start_daemon(tmp_path, path, KLASH_SYNC_INTERVAL="3600", KLASH_DEBOUNCE="0.2")
    wait_for(lambda: healthz(daemon)[0] == 200, 60, "healthy at start")
    assert OLD in feed(daemon)
    assert NEW not in feed(daemon)
    return daemon, path


def edit(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(f'title = "{OLD}"', f'title = "{NEW}"'), encoding="utf-8")


def assert_waiting(daemon: Running, reason: str) -> None:
    """Degraded, naming the programme and the state, with since when; the old feed served."""
    status, body = healthz(daemon)
    assert status == 503
    by_part = {p["part"]: p for p in body["problems"]}
    assert set(by_part) == {"programme", "state"}, body["problems"]
    assert by_part["programme"]["reason"].startswith("the programme on disk is not applied yet")
    assert reason in by_part["state"]["reason"]
    assert by_part["state"]["since"]
    assert by_part["programme"]["since"]
    assert body["programme"]["applied"] is False
    assert body["programme"]["valid_on_disk"] is True
    metrics = fetch(daemon.url, "/metrics").body.decode()
    assert "klash_healthy 0.0" in metrics
    assert 'klash_health_problems{part="state"} 1.0' in metrics
    text = feed(daemon)
    assert OLD in text
    assert NEW not in text


def assert_applied(daemon: Running) -> None:
    wait_for(lambda: healthz(daemon)[0] == 200, 30, "healthy again")
    text = feed(daemon)
    assert NEW in text
    atom = fetch(daemon.url, "/changes.atom")
    assert atom.status == 200
    assert "sali 2" in atom.body.decode()
    code, _ = stop(daemon)
    assert code == 0
    log = daemon.log()
    assert "Traceback" not in log, log[max(0, log.find("Traceback") - 600):][:3000]


def test_full_disk_edit_waits_and_is_applied_when_space_returns(tmp_path, small_volume):
    daemon, path = started(tmp_path)
    try:
        filler = fill(small_volume)
        edit(path)
        wait_for(lambda: parts(daemon) == {"programme", "state"}, 15, "degraded while the disk is full")
        assert_waiting(daemon, "No space left on device")
        assert "the programme on disk is valid but not applied" in daemon.log()
        filler.unlink()  # space returns: no restart, no new edit
        assert_applied(daemon)
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()


def test_database_held_by_another_process_edit_waits_and_is_applied_after(tmp_path):
    daemon, path = started(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "db.execute('BEGIN EXCLUSIVE')\n"
         "print('held', flush=True)\n"
         "sys.stdin.read()\n"
         "db.execute('ROLLBACK')\n",
         str(tmp_path / "state" / "state.sqlite3")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        edit(path)
        wait_for(lambda: parts(daemon) == {"programme", "state"}, 15, "degraded while the store is held")
        assert_waiting(daemon, "is locked by another process")
        holder.communicate("", timeout=10)  # the other program lets go
        assert_applied(daemon)
    finally:
        if holder.poll() is None:
            holder.kill()
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()

