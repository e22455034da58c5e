"""KLASH_SITE_DIR: the daemon publishes the static site itself after every applied change.

The same tree as ``klash-sync export --all`` (``web/static.py``), swapped in atomically,
so nginx, a CDN or object storage can serve the feeds at any scale with no cron job.
The daemon calls ``tick`` on every turn of its loop: a snapshot it has not exported yet
(a reload, a republish) is exported on a thread of its own, never in the main loop or
the sync pool; ``changed`` asks for an export of the same snapshot (a rotated feed
address). A burst of changes makes one export of the latest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from klash_sync.errors import UserError
from klash_sync.render.snapshot import Snapshot
from klash_sync.settings import Settings
from klash_sync.state.store import Store
from klash_sync.web.static import export_all
from klash_sync.web.tokens import FeedKeys

log = logging.getLogger(__name__)


class SitePublisher:
    def __init__(self, settings: Settings, store: Store,
                 keys: Callable[[], FeedKeys | None]) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys
        self._seen: Snapshot | None = None
        self._wanted: Snapshot | None = None
        self._queued = False
        self._lock = threading.Lock()
        self._failed: str | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="site") if settings.site_dir else None

    def tick(self, snapshot: Snapshot | None) -> None:
        if snapshot is not None and snapshot is not self._seen:
            self._seen = snapshot
            self.changed(snapshot)

    def changed(self, snapshot: Snapshot | None = None) -> None:
        """Export ``snapshot`` (default: the last one seen) soon."""
        snapshot = snapshot or self._seen
        if self._pool is None or snapshot is None:
            return
        with self._lock:
            self._wanted = snapshot
            if self._queued:
                return  # the queued export takes the newest snapshot when it starts
            self._queued = True
        self._pool.submit(self._export)

    def _export(self) -> None:
        with self._lock:
            snapshot, self._queued = self._wanted, False
        if snapshot is None or self.settings.site_dir is None:
            return
        try:
            version = export_all(snapshot, self.settings, self.settings.site_dir, self.keys(),
                                 self.store.recent_changes(30))
        except (UserError, OSError) as e:
            message = str(e) if isinstance(e, UserError) else f"{e.strerror or e}"
            if message != self._failed:
                log.error("cannot publish the site to %s: %s", self.settings.site_dir, message)
            self._failed = message
            return
        except Exception:  # one bad export must not end the publisher; the next change retries
            log.exception("publishing the site to %s failed", self.settings.site_dir)
            return
        if self._failed is not None:
            log.info("the site is published to %s again", self.settings.site_dir)
        self._failed = None
        log.info("published the site to %s (%s)", self.settings.site_dir, version.name)

    def idle(self) -> bool:
        with self._lock:
            return not self._queued

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
