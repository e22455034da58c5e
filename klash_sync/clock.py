"""The clock: wall time and monotonic time, passed in wherever time is read.

``Clock`` is the real one; ``FakeClock`` moves only when told, so tests and simulations
of the daemon never sleep. A foundation piece: it imports nothing of klash-sync.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time


class Clock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(_dt.UTC)


class FakeClock(Clock):
    """A clock that moves only when ``advance`` is called (for tests and simulations)."""

    def __init__(self, start: _dt.datetime | None = None) -> None:
        self._mono = 1000.0
        self._wall = start or _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC)
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def now(self) -> _dt.datetime:
        with self._lock:
            return self._wall

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._mono += seconds
            self._wall += _dt.timedelta(seconds=seconds)
