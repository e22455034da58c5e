"""Backoff per (channel, recipient): one formula for every channel, kept in the state store.

After the n-th failure in a row a recipient waits ``base·2ⁿ⁻¹`` seconds, capped at
``cap`` (``KLASH_RETRY_MAX``), times an "equal jitter" in [½, 1]: many calendars on one
failing server then come back spread out rather than at the same second, and none
waits longer than the cap. ``delay`` is that formula alone, for a channel that keeps
its failures in a ledger of its own (the invitations' outbox, per message).

``Backoff`` remembers each failing recipient in the store (table ``backoff``), so a
restarted daemon does not hammer a server that was failing a minute ago. Deadlines are
stored as wall time and kept in memory as monotonic time: ``ready`` is asked for every
due recipient on every turn of the daemon's loop, and must not read the database. The
store has one writer per state directory, so memory and table never disagree.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from klash_sync.clock import Clock
from klash_sync.errors import StateError
from klash_sync.state.store import Store

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS backoff (
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    failures INTEGER NOT NULL,
    ready_at TEXT NOT NULL,
    PRIMARY KEY (channel, recipient)
);
"""


def delay(failures: int, *, base: float, cap: float,
          rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after the ``failures``-th failure in a row (1 for the first)."""
    full = min(cap, base * 2.0 ** (max(failures, 1) - 1))
    return full * (0.5 + rand() / 2)


class Backoff:
    """Exponential backoff per recipient of one channel, persisted in the state store.

    ``failed(key)`` returns the pause, ``succeeded(key)`` forgets the failures,
    ``ready(key)`` says whether the pause is over, ``failures(key)`` counts them. Without
    a store (a one-shot command, a simulation) the same formula is kept in memory only.
    """

    def __init__(self, clock: Clock, store: Store | None = None, *, channel: str = "caldav",
                 base: float = 5.0,
                 cap: float = 900.0, rand: Callable[[], float] = random.random) -> None:
        self.clock = clock
        self.store = store
        self.channel = channel
        self.base = base
        self.cap = cap
        self.rand = rand
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._ready_at: dict[str, float] = {}  # monotonic
        if store is not None:
            store.add_schema(_SCHEMA)
            self._load(store)

    def _load(self, store: Store) -> None:
        with store.reading() as db:
            rows = db.execute("SELECT recipient, failures, ready_at FROM backoff WHERE channel=?",
                              (self.channel,)).fetchall()
        now, mono = self.clock.now(), self.clock.monotonic()
        for recipient, failures, ready_at in rows:
            left = (datetime.fromisoformat(ready_at) - now).total_seconds()
            # A pause is never longer than the cap, even if the wall clock went back.
            self._failures[recipient] = failures
            self._ready_at[recipient] = mono + min(max(left, 0.0), self.cap)

    def failed(self, key: str) -> float:
        """Record a failure; return how long to wait before the next try."""
        with self._lock:
            n = self._failures.get(key, 0) + 1
            pause = delay(n, base=self.base, cap=self.cap, rand=self.rand)
            self._failures[key] = n
            self._ready_at[key] = self.clock.monotonic() + pause
        ready_at = datetime.fromtimestamp(self.clock.now().timestamp() + pause, UTC)
        self._write("INSERT OR REPLACE INTO backoff VALUES (?,?,?,?)",
                    (self.channel, key, n, ready_at.isoformat()))
        return pause

    def succeeded(self, key: str) -> None:
        with self._lock:
            known = self._failures.pop(key, None) is not None
            self._ready_at.pop(key, None)
        if known:  # a success after success writes nothing: a no-op pass stays a no-op
            self._write("DELETE FROM backoff WHERE channel=? AND recipient=?", (self.channel, key))

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        """Persist one change. Memory stays right if the store cannot be written (a broken
        or removed state directory is reported by the store's own writes): pausing a
        failing server must not itself become a failure."""
        if self.store is None:
            return
        try:
            with self.store.transaction() as db:
                db.execute(sql, args)
        except (StateError, sqlite3.Error) as e:
            log.warning("backoff of %s not saved: %s", self.channel, " ".join(str(e).split()))

    def ready(self, key: str) -> bool:
        with self._lock:
            return self.clock.monotonic() >= self._ready_at.get(key, float("-inf"))

    def failures(self, key: str) -> int:
        with self._lock:
            return self._failures.get(key, 0)
