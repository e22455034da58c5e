"""Schedule, debounce and backoff on an injected clock: nothing here sleeps."""

from __future__ import annotations

import pytest

from klash_sync.clock import FakeClock
from klash_sync.service.timing import Debouncer, Periodic
from klash_sync.state.backoff import Backoff


def test_debounce_fires_once_after_the_burst_settles():
    clock = FakeClock()
    d = Debouncer(1.0, clock)
    assert not d.due()
    d.poke()
    clock.advance(0.6)
    d.poke()  # the file is still being written
    clock.advance(0.6)
    assert not d.due(), "1 s has not passed since the last event"
    clock.advance(0.5)
    assert d.due()
    assert not d.due(), "fires once per burst"


def test_sighup_trigger_is_not_postponed_by_later_file_events():
    clock = FakeClock()
    d = Debouncer(600.0, clock)
    d.poke()
    d.trigger()
    d.poke()  # the watcher's event for the same edit arrives after the signal
    assert d.due()
    assert not d.due()


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    clock = FakeClock()
    highest = Backoff(clock, base=5, cap=60, rand=lambda: 1.0)
    delays = [highest.failed("a") for _ in range(6)]
    assert delays == [5, 10, 20, 40, 60, 60]
    lowest = Backoff(clock, base=5, cap=60, rand=lambda: 0.0)
    assert [lowest.failed("a") for _ in range(3)] == [2.5, 5, 10]


def test_backoff_is_per_calendar_and_resets_on_success():
    clock = FakeClock()
    b = Backoff(clock, base=10, cap=100, rand=lambda: 1.0)
    b.failed("down")
    assert not b.ready("down")
    assert b.ready("healthy"), "one failing calendar never delays another"
    clock.advance(9.9)
    assert not b.ready("down")
    clock.advance(0.2)
    assert b.ready("down")
    b.failed("down")
    assert b.failures("down") == 2
    b.succeeded("down")
    assert b.ready("down")
    assert b.failures("down") == 0


@pytest.mark.parametrize("jitter", [0.0, 0.3, 0.999])
def test_backoff_jitter_stays_between_half_and_full(jitter):
    b = Backoff(FakeClock(), base=8, cap=1000, rand=lambda: jitter)
    delay = b.failed("x")
    assert 4 <= delay <= 8


def test_periodic_runs_on_the_injected_clock():
    clock = FakeClock()
    runs = []
    p = Periodic(300, lambda: runs.append(clock.now()), clock)
    p.run_pending()
    assert runs == []
    clock.advance(299)
    p.run_pending()
    assert runs == []
    clock.advance(1)
    p.run_pending()
    assert len(runs) == 1
    clock.advance(300)
    p.run_pending()
    clock.advance(300)
    p.run_pending()
    assert len(runs) == 3
