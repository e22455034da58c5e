"""The in-process daemon while another connection holds its database: what waits, what clears.

Found by a review of the first version: an edit reverted while it waited kept /healthz
degraded for good; a waiting edit replaced by a broken file was retried (and logged) on
every turn of the loop; a start with a broken file and a held database failed instead of
waiting. Each case here failed then. The database is held by a second SQLite connection
in ``BEGIN EXCLUSIVE``, which is what another program's lock is to SQLite.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from klash_sync.clock import FakeClock
from klash_sync.service.daemon import Daemon
from tests.fixtures.caldav_world import ENV
from tests.fixtures.daemon_rig import (
    SESSIONS,
    edit,
    programme_for,
    radicale_rig,
    rig_settings,
    started,
)
from tests.fixtures.servers import start_radicale


@contextmanager
def held(database: Path) -> Iterator[None]:
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.fixture
def rig(tmp_path: Path):
    yield from radicale_rig(tmp_path)


def turns(daemon: Daemon, clock: FakeClock, seconds: float) -> None:
    for _ in range(int(seconds * 10)):
        clock.advance(0.1)
        daemon.tick()


def test_an_edit_reverted_while_it_waited_leaves_nothing_waiting(rig):
    daemon, clock, server, path = rig
    original = path.read_text()
    with held(daemon.settings.state_db):
        edit(daemon, path, programme_for(server.base, SESSIONS.replace("2019-10-08", "2019-10-09")), clock)
        turns(daemon, clock, 2)
        assert daemon.loader.waiting
        edit(daemon, path, original, clock)  # the organiser takes it back
        turns(daemon, clock, 2)
        assert not daemon.loader.waiting
    turns(daemon, clock, 6)  # the store is writable again
    assert daemon._health()[0] == 200
    assert "20191008" in daemon.live.snapshot.events["vantaa"].decode()  # type: ignore[union-attr]


def test_a_waiting_edit_replaced_by_a_broken_file_is_not_retried_every_turn(rig, caplog):
    daemon, clock, server, path = rig
    with held(daemon.settings.state_db):
        edit(daemon, path, programme_for(server.base, SESSIONS.replace("2019-10-08", "2019-10-09")), clock)
        turns(daemon, clock, 2)
        assert daemon.loader.waiting
        edit(daemon, path, "broken [", clock)
        turns(daemon, clock, 2)
    time.sleep(0.5)  # every file event of that save has arrived (the watcher's thread, real time)
    turns(daemon, clock, 5)  # and, with the 2 s stat check, been debounced into its reloads
    caplog.clear()
    caplog.set_level(logging.ERROR, logger="klash_sync.service.reload")
    turns(daemon, clock, 10)  # a hundred turns of the loop with the store writable again
    # Before, every turn retried it: a hundred reloads and errors; and each reload's own read
    # of the file (watchdog reports opens) poked the next one, an error a second. A late
    # event of the save itself (the watcher runs in real time, this clock does not) may bring one.
    assert len([r for r in caplog.records if "programme not applied" in r.getMessage()]) <= 1
    assert not daemon.loader.waiting
    assert daemon.live.programme_error is not None  # the broken file is what is reported


def test_a_start_with_a_broken_file_and_a_held_database_waits_then_serves_the_last_good(tmp_path):
    server = start_radicale(tmp_path / "radicale")
    path = tmp_path / "programme.toml"
    path.write_text(programme_for(server.base))
    clock = FakeClock()
    started(tmp_path, path, clock).stop()
    path.write_text("broken [")
    second = Daemon(rig_settings(tmp_path, path), clock=clock, environ=ENV)
    try:
        with held(second.settings.state_db):
            second.start()  # raised StateError before
            turns(second, clock, 2)
            assert second.live.snapshot is None
            assert second.loader.waiting
        turns(second, clock, 6)
        assert second.live.snapshot is not None  # the last good programme, once the store answers
        assert "vantaa" in second.live.snapshot.events
        assert second.live.programme_error is not None  # and the broken file still reported
    finally:
        second.stop()
        server.stop()
