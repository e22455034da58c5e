"""The state store's version and a database held by another program, as an operator meets them.

Every command that opens the state refuses a store written by a newer klash-sync with
one line and exit 2, and leaves it byte for byte as it was. A store of the first
release that shipped is upgraded by the first command that writes (a copy kept beside
it), and only in memory by one that changes nothing. A database that another process
holds under ``BEGIN EXCLUSIVE`` (the ``sqlite3`` shell, or a tool in exclusive locking
mode) stops ``sync`` with one line, files untouched; the commands that change nothing
work or stop the same way, and never hang (each runs with a bounded ``timeout``).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from klash_sync.state.schema import VERSION
from tests.fixtures.common import programme_text, run_cli
from tests.fixtures.store_history import build_store, shipped_schemas

SESSIONS = (
    'id = "vantaa"\ntitle = "Vantaa"\nmunicipality = "Vantaa"\n'
    'start = 2019-10-08T13:00:00\nend = 2019-10-08T15:00:00\nmentors = ["milja-kopsi", "ulla-nord"]',
)
# Every command that opens the state: the ones that write, then the ones that change nothing.
COMMANDS = (("sync",), ("purge", "milja-kopsi"), ("export", "--all", "SITE"),
            ("feeds", "rotate", "milja-kopsi"), ("invites", "--send"), ("run",), ("serve",),
            ("accounts",), ("plan",), ("export",), ("feeds",), ("invites",))
READERS = (("plan",), ("export",), ("feeds",), ("invites",))


def environment(tmp_path: Path) -> dict[str, str]:
    programme = tmp_path / "programme.toml"
    if not programme.exists():
        programme.write_text(programme_text(*SESSIONS), encoding="utf-8")
    return {"KLASH_PROGRAMME": str(programme), "KLASH_STATE_DIR": str(tmp_path / "state"),
            "KLASH_PORT": "0", "KLASH_SECRET": "s" * 40,
            "KLASH_SMTP_URL": "smtp://127.0.0.1:9", "KLASH_REQUEST_TIMEOUT": "3"}


def files(state: Path) -> dict[str, bytes]:
    """What a command must leave as it was: every file but SQLite's shared-memory index and
    the lock file (in which a writing command records itself)."""
    return {str(p.relative_to(state)): p.read_bytes() for p in sorted(state.rglob("*"))
            if p.is_file() and not p.name.endswith("-shm") and p.name != "klash-sync.lock"}


def command_line(command: tuple[str, ...], tmp_path: Path) -> tuple[str, ...]:
    return tuple(str(tmp_path / "site") if a == "SITE" else a for a in command)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory as this release leaves it (the store written by `export --all`)."""
    where = tmp_path_factory.mktemp("made")
    done = run_cli("export", "--all", str(where / "site"), env=environment(where))
    assert done.code == 0, done.err
    return where / "state"


def dump(path: Path) -> list[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def one_line(done_err: str) -> str:
    lines = done_err.strip().splitlines()
    assert len(lines) == 1, done_err
    assert "Traceback" not in done_err
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("wal", [False, True], ids=["closed", "in-the-wal"])
def test_a_store_from_a_newer_release_is_refused_by_every_command(tmp_path, made, command, wal):
    shutil.copytree(made, tmp_path / "state")
    db = tmp_path / "state" / "state.sqlite3"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA user_version = 99")  # with the holder open, the mark stays in the WAL
    if not wal:
        holder.close()
    try:
        before = files(tmp_path / "state")
        done = run_cli(*command_line(command, tmp_path), env=environment(tmp_path), timeout=60)
        assert done.code == 2, done.out + done.err
        line = one_line(done.err)
        assert (f"the state in {tmp_path / 'state'} was written by a newer klash-sync "
                f"(schema 99, this one knows {VERSION})") in line, line
        assert files(tmp_path / "state") == before
    finally:
        holder.close()


def test_a_store_of_the_first_release_is_upgraded_by_the_first_writer(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    first_commit, first_sql = shipped_schemas()[0]
    build_store(state / "state.sqlite3", first_sql)
    env = environment(tmp_path)
    before = files(state)
    # they upgrade their copy in memory, and write nothing; not the `invites` preview here:
    # this store has never recorded the programme, so the preview records it first, as a
    # writer (test_invites_preview.py), while on a recorded one it writes nothing (below)
    for command in (c for c in READERS if c != ("invites",)):
        done = run_cli(*command, env=env, timeout=60)
        assert done.code == 0, (command, done.err)
    assert files(state) == before
    done = run_cli("export", "--all", str(tmp_path / "site"), env=env, timeout=60)
    assert done.code == 0, done.err
    copy = state / "state.sqlite3.schema-1.bak"
    original = tmp_path / "original.sqlite3"
    original.write_bytes(before["state.sqlite3"])
    assert dump(copy) == dump(original), first_commit  # the store as it was
    db = sqlite3.connect(f"file:{state / 'state.sqlite3'}?mode=ro", uri=True)
    assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION
    assert db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 1
    db.close()


# ------------------------------------------------------------ a locked database


def hold(db: Path, mode: str) -> subprocess.Popen[str]:
    """Another process holding ``db`` under BEGIN EXCLUSIVE with a write of its own, until its
    standard input closes: the sqlite3 shell when installed, else a Python doing the same."""
    script = [".timeout 5000"]
    if mode == "exclusive-mode":
        script.append("PRAGMA locking_mode=EXCLUSIVE;")
    script += ["BEGIN EXCLUSIVE;", "INSERT OR REPLACE INTO kv VALUES ('locked', 'yes');"]
    shell = shutil.which("sqlite3")
    if shell:
        argv = [shell, str(db)]
    else:
        argv = [sys.executable, "-c",
                "import sqlite3, sys\n"
                "db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5)\n"
                "for line in iter(sys.stdin.readline, ''):\n"
                "    if line.strip() and not line.startswith('.'):\n"
                "        db.execute(line)\n", str(db)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stdin is not None
    proc.stdin.write("\n".join(script) + "\n")
    proc.stdin.flush()
    deadline = time.monotonic() + 20
    while not _held(db, mode):
        assert proc.poll() is None, "the holder ended"
        assert time.monotonic() < deadline, "the holder did not take the database"
        time.sleep(0.1)
    return proc


def _held(db: Path, mode: str) -> bool:
    """Whether a writer of our own cannot begin (and, in exclusive mode, a reader cannot read)."""
    probe = sqlite3.connect(db, isolation_level=None, timeout=0)
    try:
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            pass
        else:
            probe.execute("ROLLBACK")
            return False
        if mode == "exclusive-mode":
            try:
                probe.execute("SELECT COUNT(*) FROM kv").fetchone()
            except sqlite3.OperationalError:
                return True
            return False
        return True
    finally:
        probe.close()


@pytest.mark.parametrize("command", [("sync",), *READERS], ids=" ".join)
@pytest.mark.parametrize("mode", ["write-lock", "exclusive-mode"])
def test_a_database_held_by_another_process_stops_with_one_line_never_hangs(
        tmp_path, made, command, mode):
    shutil.copytree(made, tmp_path / "state")
    db = tmp_path / "state" / "state.sqlite3"
    holder = hold(db, mode)
    try:
        before = files(tmp_path / "state")
        done = run_cli(*command, env=environment(tmp_path), timeout=90)
        if command == ("sync",) or done.code != 0:
            assert done.code == 2, done.out + done.err
            line = one_line(done.err)
            assert f"the state database {db} is locked by another process" in line, line
        assert files(tmp_path / "state") == before
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=20)
