"""Can the state store be written? Asked every few seconds, so that /healthz tells the truth.

A full disk, a read-only or removed volume, or another program holding the database
(a backup tool, an ``sqlite3`` shell in a transaction) would otherwise show only as
writes that fail one by one: an edit that is never applied, deliveries whose records
cannot be kept, while /healthz said ok. ``StateWatch`` asks the store directly
(``Store.probe``: the write lock, waited for briefly, and room for new bytes), records
the answer in ``Live`` (/healthz and the metrics show it, with since when), and tells
the main loop whether writing work may go on. While it may not, nothing new is started
that would write (deliveries wait, a programme edit waits in the loader); once the
store answers again, the waiting edit is applied with no restart.

A state database removed or replaced under the running service is different: writing
on would write into a file nobody will ever read again, so the service stops writing
until it is restarted (``Store.check``), and says so.
"""

from __future__ import annotations

import logging

from klash_sync.clock import Clock
from klash_sync.state.store import Store
from klash_sync.status import Live

log = logging.getLogger(__name__)

EVERY = 5.0  # seconds between probes while all is well
SOON = 1.0  # seconds between probes while the store cannot be written


class StateWatch:
    """The answer to "may the service write its state now?", kept fresh and shown."""

    def __init__(self, store: Store, live: Live, clock: Clock) -> None:
        self.store = store
        self.live = live
        self.clock = clock
        self._last: float | None = None

    @property
    def writable(self) -> bool:
        return self.live.state_error is None

    def check(self) -> bool:
        """Probe when due (every ``EVERY`` s, every ``SOON`` s while in trouble); True while
        writing may go on. A failure found by a write meanwhile (``Live.set_state_error``)
        counts at once."""
        now = self.clock.monotonic()
        if self._last is not None and now - self._last < (EVERY if self.writable else SOON):
            return self.writable
        self._last = now
        was = self.live.state_error
        problem = self.store.check() or self.store.probe()
        if problem is not None and problem != was:
            log.error("the state store cannot be written: %s", problem)
        elif problem is None and was is not None:
            log.info("the state store can be written again")
        self.live.set_state_error(problem, self.clock.now())
        return problem is None
