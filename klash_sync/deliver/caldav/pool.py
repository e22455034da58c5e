"""HTTP connections to CalDAV servers, shared by every calendar and every pass.

Mentors' servers are 20–150 ms away. A new TCP connection costs a round trip, a TLS
handshake one or two more, so a no-op sync that opens its own connection costs 3–4
round trips instead of the one PROPFIND it needs. One HTTP session (niquests, the
client the caldav library brought in) keeps a bounded pool per origin: up to
``per_host`` connections, reused across calendars and passes, dropped when the server
says ``Connection: close`` or lets them idle out. A semaphore per origin keeps at most
``per_host`` calendars of one provider in flight, so no one is hit by every worker.

What discovery found (a URL's calendar home, a calendar's collection) is remembered
here too, in memory, so a later calendar on the same account starts at the home.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from klash_sync.deliver.base import origin

HOST_POOLS = 512  # origins whose idle connections are kept (least recently used dropped)


# The shared spelling of a server (``deliver.base.origin``), under the name the adapter uses.
origin_of = origin


class Connections:
    """The shared session, the per-origin limits and what discovery remembers."""

    def __init__(self, per_host: int = 8) -> None:
        self.per_host = per_host
        self._session: Any = None
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        # (given URL, username) -> calendar home; (given URL, username, name) -> collection
        self.homes: dict[tuple[str, str], str] = {}
        self.collections: dict[tuple[str, str, str], str] = {}

    def session(self) -> Any:
        with self._lock:
            if self._session is None:
                import niquests

                self._session = niquests.Session(
                    pool_connections=HOST_POOLS, pool_maxsize=self.per_host,
                    # No cookies: mentors on one host log in as different users, and a
                    # session cookie of one must never be sent for another.
                    allow_incoming_cookies=False,
                    disable_http3=True,  # no QUIC probing of mentors' servers
                )
            return self._session

    @contextlib.contextmanager
    def slot(self, url: str) -> Iterator[None]:
        """Hold one of the ``per_host`` places of the URL's origin for a calendar's sync."""
        key = origin_of(url)
        with self._lock:
            semaphore = self._slots.get(key)
            if semaphore is None:
                semaphore = self._slots[key] = threading.BoundedSemaphore(self.per_host)
        with semaphore:
            yield

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                session.close()
