"""Time-driven pieces of the daemon, each on an injectable clock so tests never sleep.

* ``Debouncer``: a burst of file events becomes one reload, once the file is quiet.
* ``Periodic``: the ``schedule`` library, driven by our clock.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import threading
import types
from collections.abc import Callable, Iterator

import schedule

from klash_sync.clock import Clock


class Debouncer:
    """Fires once, ``delay`` seconds after the last of a burst of pokes."""

    def __init__(self, delay: float, clock: Clock) -> None:
        self.delay = delay
        self.clock = clock
        self._deadline: float | None = None
        self._forced = False
        self._lock = threading.Lock()

    def poke(self) -> None:
        """An event: (re)start the quiet period."""
        with self._lock:
            self._deadline = self.clock.monotonic() + self.delay

    def trigger(self) -> None:
        """Fire at the next check, whatever events arrive meanwhile (SIGHUP)."""
        with self._lock:
            self._forced = True

    def due(self) -> bool:
        """True once when the quiet period has passed (or after ``trigger``); then resets."""
        with self._lock:
            if self._forced or (self._deadline is not None
                                and self.clock.monotonic() >= self._deadline):
                self._deadline = None
                self._forced = False
                return True
            return False

    @property
    def pending(self) -> bool:
        return self._deadline is not None or self._forced


class Periodic:
    """Run ``job`` every ``interval`` seconds with the ``schedule`` library, on our clock.

    ``schedule`` reads ``datetime.datetime.now()`` itself. With the real clock we let
    it; with another clock we hand it, for the duration of each call, a ``datetime``
    module whose ``now()`` is ours. Only this class calls into ``schedule``, always
    from the daemon's main loop thread.
    """

    def __init__(self, interval: int, job: Callable[[], object], clock: Clock) -> None:
        self.clock = clock
        self.scheduler = schedule.Scheduler()
        with self._clock():
            self.scheduler.every(interval).seconds.do(job)

    @contextlib.contextmanager
    def _clock(self) -> Iterator[None]:
        if type(self.clock) is Clock:
            yield
            return
        clock = self.clock

        class _Now(_dt.datetime):
            @classmethod
            def now(cls, tz: _dt.tzinfo | None = None) -> _dt.datetime:  # type: ignore[override]
                moment = clock.now()
                return moment.astimezone(tz) if tz else moment.astimezone().replace(tzinfo=None)

        shim = types.SimpleNamespace(**{k: getattr(_dt, k) for k in dir(_dt) if not k.startswith("__")})
        shim.datetime = _Now
        saved = schedule.datetime
        schedule.datetime = shim  # type: ignore[assignment]
        try:
            yield
        finally:
            schedule.datetime = saved

    def run_pending(self) -> None:
        with self._clock():
            self.scheduler.run_pending()
