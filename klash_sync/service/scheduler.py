"""One scheduler over every delivery channel: what is written once, above the channels.

A channel (``deliver.base.Channel``: the CalDAV push in ``deliver/caldav/channel.py``,
the e-mail invitations in ``deliver/invite/channel.py``) says which units it has for a
snapshot, how the scheduler sees each (``deliver.base.Unit``), and runs one unit.
Everything else is here, the same for every channel:

* which units are due: changed ones first, after the channel's quiet period, the rest
  on the periodic pass, and again whenever the channel's own retry clock says so
  (``dispatch.Due``);
* backoff per (channel, unit) after a failure, so a failing recipient waits alone;
* isolation: every unit runs on its channel's own worker pool, one unit a worker, and
  an exception in one run is that unit's failure, never the loop's or another's;
* results: every outcome goes into the status (``klash_sync.status``) and the metrics,
  and to the operator who asked for it, if one did.

Runs happen on worker threads; ``tick`` (from the daemon's main loop) collects their
outcomes and starts what is due, so status, backoff and queues are only touched from
the loop's thread.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from klash_sync.clock import Clock
from klash_sync.deliver.base import Ask, Channel, Outcome
from klash_sync.render.snapshot import Snapshot
from klash_sync.service.dispatch import Due
from klash_sync.service.metrics import Metrics
from klash_sync.state.backoff import Backoff
from klash_sync.status import Live, Record

log = logging.getLogger(__name__)


class Lane:
    """One channel's queue, backoff, workers and runs in flight."""

    def __init__(self, channel: Channel, clock: Clock, backoff: Backoff) -> None:
        self.channel = channel
        self.due: Due[Any] = Due(channel.per_group, channel.view, quiet=channel.quiet, clock=clock)
        self.backoff = backoff
        self.pool = ThreadPoolExecutor(channel.workers, thread_name_prefix=channel.name)
        self.inflight: dict[str, Future[None]] = {}
        self.asks: dict[str, tuple[Ask, Any]] = {}  # key -> the request and the item to run


class Scheduler:
    """Runs every channel's due units and records what came of them."""

    def __init__(self, channels: Sequence[Channel], live: Live, metrics: Metrics, clock: Clock,
                 *, retry_max: float, backoff: Callable[[str], Backoff] | None = None) -> None:
        """``backoff(channel name)`` makes each channel's backoff; by default one in memory,
        capped at ``retry_max`` seconds."""
        self.live = live
        self.metrics = metrics
        self.clock = clock
        make = backoff or (lambda _name: Backoff(clock, cap=retry_max))
        self.lanes = {c.name: Lane(c, clock, make(c.name)) for c in channels}
        self.finished: queue.Queue[tuple[str, str, Outcome, Ask | None]] = queue.Queue()
        self.wake = threading.Event()  # a finished run wakes the loop to start the next at once
        self.republish = False
        self.stopping = False
        for channel in channels:
            live.open(channel.name, channel.section, unit=channel.unit, levels=channel.levels)
            metrics.open(channel.name)
            self.report(channel.name, None)

    def lane(self, name: str) -> Lane:
        return self.lanes[name]

    # ------------------------------------------------------------- what is due

    def refresh(self, snapshot: Snapshot | None, *, all_due: bool) -> None:
        """A new programme (only changed units due) or the periodic pass (all due)."""
        if snapshot is None:
            return
        for name, lane in self.lanes.items():
            first = not lane.due.units
            changed = lane.due.refresh(lane.channel.items(snapshot), all_due=all_due)
            if changed and not all_due and first:
                log.info("checking %d %s against the programme", len(changed), lane.channel.section)
            elif changed and not all_due:
                log.info("%d %s changed; delivering them first", len(changed), lane.channel.section)
            if not lane.channel.reports:
                self.live.forget(name, set(lane.due.jobs))

    def ask(self, name: str, items: Mapping[str, Any], ask: Ask) -> None:
        """Run these units now (an item of None: the unit's own), telling ``ask.done``."""
        lane = self.lanes[name]
        for key, item in items.items():
            if key not in lane.due.units and item is None:
                ask.done(key, Outcome(False, "no such unit", lines=[f"FAILED  {key}: not in the programme"]))
                continue
            if key not in lane.due.units:  # not due by the programme, but asked for
                lane.due.jobs[key], lane.due.units[key] = item, lane.channel.view(item)
            lane.asks[key] = (ask, item if item is not None else lane.due.jobs[key])
            lane.due.now(key)
            lane.backoff.succeeded(key)  # do it now, not after a failing unit's pause

    # ------------------------------------------------------------------- loop

    def tick(self, snapshot: Snapshot | None) -> None:
        """Collect finished runs, then start what is due (on the loop's thread)."""
        self.collect()
        if snapshot is None or self.stopping:
            return
        for lane in self.lanes.values():
            for key in lane.channel.retry_due() & lane.due.jobs.keys():
                lane.due.pending.add(key)
            free = lane.channel.workers - len(lane.inflight)
            for key in lane.due.take(lane.inflight, free, lane.backoff.ready):
                asked = lane.asks.pop(key, None)
                ask, item = asked if asked is not None else (None, lane.due.jobs[key])
                lane.inflight[key] = lane.pool.submit(self._run, lane, key, item, snapshot, ask)

    def _run(self, lane: Lane, key: str, item: Any, snapshot: Snapshot, ask: Ask | None) -> None:
        started = time.monotonic()
        try:
            outcome = lane.channel.run(item, snapshot, ask)
        except Exception as e:  # one unit's failure, never the loop's or another unit's
            log.exception("%s: run of %s failed", lane.channel.name, key)
            outcome = Outcome(False, f"{type(e).__name__}", lines=[f"failed: {type(e).__name__}"],
                              seconds=time.monotonic() - started)
        try:
            self.finished.put((lane.channel.name, key, outcome, ask))
        finally:
            self.wake.set()

    def collect(self) -> int:
        """Record the runs that ended; how many there were."""
        done = 0
        while True:
            try:
                name, key, outcome, ask = self.finished.get_nowait()
            except queue.Empty:
                return done
            done += 1
            self._record(self.lanes[name], key, outcome)
            if ask is not None:
                ask.done(key, outcome)

    def _record(self, lane: Lane, key: str, outcome: Outcome) -> None:
        channel, due = lane.channel, lane.due
        lane.inflight.pop(key, None)
        unit = due.units.get(key)
        mentor = unit.mentor if unit is not None else key
        self.metrics.ran(channel.name, ok=outcome.ok, seconds=outcome.seconds,
                         actions=outcome.actions, failed=outcome.failed)
        self.republish |= outcome.republish
        if outcome.ok:
            lane.backoff.succeeded(key)
        elif outcome.retry:
            delay = lane.backoff.failed(key)
            due.pending.add(key)
            log.warning("%s: %s failed (%s); retrying in %.0f s", channel.section, mentor,
                        outcome.error, delay)
        if outcome.ok and outcome.done and (unit is None or unit.last):
            due.drop(key)  # not a current calendar an operator purged: it stays in the programme
        if not self.report(channel.name, self.live.snapshot) and not (outcome.ok and outcome.done):
            now = self.clock.now()
            self.live.record(Record(channel.name, key, mentor, outcome.ok, now,
                                    now if outcome.ok else None, None if outcome.ok else now,
                                    outcome.error, dict(outcome.counts)))

    def report(self, name: str, snapshot: Snapshot | None) -> bool:
        """Re-read the status of a channel that keeps it itself; False for one that does not."""
        channel = self.lanes[name].channel
        found = channel.status(snapshot) if channel.reports else None
        if found is None:
            return False
        records, problems = found
        self.live.replace(name, records, problems)
        return True

    # ------------------------------------------------------------ inspection

    @property
    def inflight(self) -> dict[tuple[str, str], Future[None]]:
        return {(n, k): f for n, lane in self.lanes.items() for k, f in lane.inflight.items()}

    def idle(self) -> bool:
        """Nothing running and nothing due now (for tests that step the clock)."""
        self.collect()
        return all(not lane.inflight and not lane.due.waiting(lane.inflight, lane.backoff.ready)
                   for lane in self.lanes.values())

    def stop(self, grace: float) -> bool:
        """Start nothing more; give running units ``grace`` seconds, then close the channels.

        True when every run finished; False when some were still running (waiting on a
        server): they are abandoned, their channels close only what they no longer use."""
        self.stopping = True
        running = [f for lane in self.lanes.values() for f in lane.inflight.values()]
        log.info("stopping: waiting for %d running deliveries", len(running))
        for lane in self.lanes.values():
            lane.pool.shutdown(wait=False, cancel_futures=True)
        done = threading.Event()

        def wait_all() -> None:
            for future in running:
                with contextlib.suppress(Exception):
                    future.result()
            done.set()

        threading.Thread(target=wait_all, daemon=True).start()
        done.wait(grace)
        if not done.is_set():
            left = [f"{name} {key}" for name, lane in self.lanes.items()
                    for key, future in lane.inflight.items() if not future.done()]
            log.warning("abandoning %d deliveries still waiting on a server (%s); the next start "
                        "repeats them", len(left), ", ".join(left))
        for lane in self.lanes.values():
            lane.channel.close(done.is_set())
        return done.is_set()
