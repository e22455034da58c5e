"""Noticing edits of the programme file: file events, and a stat check where events do not come.

Both only poke the debouncer (``timing.Debouncer``); the daemon reloads once a burst
of events has settled. The watcher watches the file's folder, not the file, because
editors save by writing a new file and renaming it over the old one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from klash_sync.clock import Clock
from klash_sync.service.timing import Debouncer

log = logging.getLogger(__name__)

STAT_EVERY = 2.0  # seconds between stat checks


class Watcher:
    """Pokes ``debouncer`` whenever the file at ``path`` may have changed."""

    def __init__(self, path: Path, debouncer: Debouncer, clock: Clock) -> None:
        self.path = path
        self.debouncer = debouncer
        self.clock = clock
        self._observer: Any = None
        self._stat: tuple[int, int, int] | None = None
        self._next_stat = 0.0

    def baseline(self) -> None:
        """Take the stat check's baseline; before the first read, so that an edit saved
        between the read and the watcher's start is not missed until the next edit."""
        self._stat = self._file_stat()

    def start(self) -> None:
        from watchdog.events import (
            EVENT_TYPE_CLOSED_NO_WRITE,
            EVENT_TYPE_OPENED,
            FileSystemEventHandler,
        )
        from watchdog.observers import Observer

        target = self.path.resolve()
        debouncer = self.debouncer

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.event_type in (EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE):
                    return  # a read, our own among them: each reload would poke the next
                paths = {getattr(event, "src_path", None), getattr(event, "dest_path", None)}
                if any(p and Path(str(p)).resolve() == target for p in paths):
                    debouncer.poke()

        try:
            self._observer = Observer()
            self._observer.schedule(Handler(), str(target.parent), recursive=False)
            self._observer.daemon = True
            self._observer.start()
        except OSError as e:  # e.g. inotify limits; the stat check below still sees edits
            log.warning("cannot watch %s (%s); checking it every 2 s instead", target, e)
            self._observer = None

    def check(self) -> None:
        """A stat every 2 s, for file systems where change events do not arrive."""
        now = self.clock.monotonic()
        if now < self._next_stat:
            return
        self._next_stat = now + STAT_EVERY
        current = self._file_stat()
        if self._stat is not None and current != self._stat and not self.debouncer.pending:
            self.debouncer.poke()
        self._stat = current

    def _file_stat(self) -> tuple[int, int, int]:
        try:
            st = self.path.stat()
        except OSError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
