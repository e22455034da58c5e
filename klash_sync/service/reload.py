"""Loading the programme into the running service: applied only when valid, else the last good one.

A programme that fails validation is never applied: the last good one keeps being
served and delivered, and the error is shown on /healthz and the page until the file
is fixed. Every applied programme is also kept in the state directory
(``programme.last-good.toml``), so a service started with a broken file serves the
last programme that was valid rather than nothing.

A valid programme that cannot be applied because the state store cannot be written
(a full disk, a read-only volume, a database another program holds) is kept waiting,
not dropped: ``waiting`` says so, /healthz shows it, and the service applies it as
soon as the store can be written again (``StateWatch``), with no restart and no edit.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from klash_sync.clock import Clock
from klash_sync.errors import ProgrammeError, StateError
from klash_sync.programme.load import parse
from klash_sync.render.snapshot import Snapshot
from klash_sync.service.metrics import Metrics
from klash_sync.service.publish import publish
from klash_sync.settings import Settings
from klash_sync.state.store import Store
from klash_sync.status import Live

log = logging.getLogger(__name__)


class Loader:
    """Reads, validates, publishes and hands over the programme; ``applied`` hears of each."""

    def __init__(self, settings: Settings, store: Store, live: Live, metrics: Metrics, clock: Clock,
                 applied: Callable[[Snapshot], None]) -> None:
        self.settings = settings
        self.store = store
        self.live = live
        self.metrics = metrics
        self.clock = clock
        self.applied = applied
        self._last_raw: bytes | None = None
        self._retry_at = 0.0  # monotonic: when a waiting programme is tried again
        self._last_good_waits = False  # the start's last good programme waits for the store

    def reload(self, *, initial: bool = False) -> bool:
        """Load the programme file; apply it only if it is valid. Returns True if applied."""
        path = self.settings.programme
        try:
            raw = path.read_bytes()
        except OSError as e:
            return self._reject(f"{path}: the file cannot be read ({e.strerror})")
        if raw == self._last_raw and self.live.programme_error is None:
            self.live.set_unapplied(None)  # an edit reverted to what is in use: nothing waits
            return False  # touched but unchanged
        try:
            programme = parse(raw, str(path))
        except ProgrammeError as e:
            if (initial or self._last_good_waits) and self._last_raw is None:
                self._use_last_good(str(e))
            if not self._last_good_waits:
                self.live.set_unapplied(None)  # what waited was replaced by a broken file
            return self._reject(str(e))
        problem = self.store.probe()
        if problem is None:
            try:
                snapshot = publish(programme, self.store, now=self.clock.now(),
                                   base_url=self.settings.event_base_url, previous=self.live.snapshot)
            except StateError as e:
                problem = str(e)
        if problem is not None:
            return self._wait(problem)
        self._apply(snapshot, raw)
        return True

    @property
    def waiting(self) -> bool:
        """A valid programme on disk is not applied yet: the state store could not be written."""
        return self.live.unapplied is not None

    def retry_due(self) -> bool:
        """A waiting programme may be tried again: at most once a second, however the store
        fails (a quota the file system does not report lets the probe pass every time)."""
        return self.waiting and self.clock.monotonic() >= self._retry_at

    def _wait(self, problem: str) -> bool:
        self._retry_at = self.clock.monotonic() + 1.0
        if not self.waiting:
            log.error("the programme on disk is valid but not applied: the state store cannot be "
                      "written (%s); it is applied as soon as it can be, with no restart", problem)
            self.metrics.reloads.labels(result="waiting").inc()
        self.live.set_unapplied(f"the programme on disk is not applied yet: {problem}", self.clock.now())
        self.live.set_state_error(problem, self.clock.now())
        return False

    def republish(self) -> bool:
        """Publish the current programme again: the store's SEQUENCEs were raised by a sync.
        False if the store could not be written (asked again once it can)."""
        snapshot = self.live.snapshot
        if snapshot is None:
            return True
        try:
            fresh = publish(snapshot.programme, self.store, now=self.clock.now(),
                            base_url=self.settings.event_base_url, previous=snapshot)
        except StateError as e:
            self.live.set_state_error(str(e), self.clock.now())
            return False
        self.live.set_snapshot(fresh, from_file=False)  # a broken file on disk is still reported
        log.info("republished the programme with SEQUENCEs raised above the servers' copies")
        self.applied(fresh)
        return True

    def _apply(self, snapshot: Snapshot, raw: bytes) -> None:
        self._last_raw = raw
        self.live.set_snapshot(snapshot)
        self.live.set_unapplied(None)
        self._save_last_good(raw)
        self.metrics.reloads.labels(result="ok").inc()
        self.metrics.valid.set(1)
        self.metrics.sessions.set(len(snapshot.programme.sessions))
        self.metrics.loaded.set(snapshot.loaded_at.timestamp())
        log.info("programme loaded: %d sessions, %d mentors%s", len(snapshot.programme.sessions),
                 len(snapshot.programme.mentors), what_happened(snapshot.happened))
        self.applied(snapshot)

    def _reject(self, message: str) -> bool:
        self.live.set_error(message, self.clock.now())
        self.metrics.reloads.labels(result="invalid").inc()
        self.metrics.valid.set(0)
        still = "nothing is served until it is fixed" if self.live.snapshot is None else \
            f"still using the programme loaded at {self.live.snapshot.loaded_at:%Y-%m-%d %H:%M:%S} UTC"
        log.error("programme not applied (%s):\n%s", still, message)
        return False

    @property
    def _last_good_path(self) -> Path:
        return self.settings.state_dir / "programme.last-good.toml"

    def _save_last_good(self, raw: bytes) -> None:
        tmp = self._last_good_path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # new, 0600 (mentors' addresses), never through a symlink
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
            tmp.replace(self._last_good_path)

    def _use_last_good(self, error: str) -> None:
        """At start with a broken file, serve the last programme that was valid."""
        try:
            raw = self._last_good_path.read_bytes()
            programme = parse(raw, str(self._last_good_path))
        except (OSError, ProgrammeError):
            return
        try:
            snapshot = publish(programme, self.store, now=self.clock.now(),
                               base_url=self.settings.event_base_url)
        except StateError as e:  # the store is held or full at start: wait for it, do not fail
            self._last_good_waits = True
            self._wait(str(e))
            return
        log.warning("starting with the last good programme from %s", self._last_good_path)
        self._last_good_waits = False
        self._apply(snapshot, raw)
        self.live.set_error(error, self.clock.now())
        self._last_raw = None


    @property
    def last_raw(self) -> bytes | None:
        """The bytes of the programme file last applied (None before one was)."""
        return self._last_raw

def what_happened(happened: dict[str, str]) -> str:
    """'; vantaa changed, joensuu added' — or counts, when a whole programme arrives at once."""
    if not happened:
        return ""
    if len(happened) <= 10:
        return "; " + ", ".join(f"{sid} {what}" for sid, what in sorted(happened.items()))
    counts: dict[str, int] = {}
    for what in happened.values():
        counts[what] = counts.get(what, 0) + 1
    return "; " + ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
