"""Stopping within KLASH_STOP_TIMEOUT, whatever a mail or CalDAV server is doing.

A server that accepts a connection and then never answers holds the thread that talks to
it until KLASH_REQUEST_TIMEOUT, or longer (smtplib waits that long per reply, and a
send may wait for several). Python cannot interrupt such a thread, and it joins the
channels' worker threads when the process exits, so a stopped daemon used to live on,
holding the state directory's lock, until the last reply timed out. systemd or Docker
then killed it, or a restart found the directory taken.

So the stop has a deadline, counted from the signal:

* ``Budget`` shares it out: running deliveries get most of it to finish, the HTTP
  server a little, and a margin is kept before the end;
* ``still_waiting`` and ``leave`` end the process at once with exit code 0 when, after
  the orderly stop, a thread still waits on a server: its work is abandoned, as after a kill -9,
  which every channel already repairs at the next start (an invitation is marked sent
  only after the server's 250 for its DATA, so an unanswered one is sent again; a
  calendar is compared with the programme again);
* ``watch`` is the last resort: should the orderly stop itself not be done by the
  deadline, it ends the process from a thread of its own.

Ending is ``os._exit`` after the log is flushed: nothing else needs to run, since the
state store (SQLite, in WAL mode) keeps every committed transaction and drops a half-done
one, and the kernel releases the state directory's lock (an ``flock``) as the process
goes, before its parent learns it has ended, so a restart finds the directory free.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import NoReturn

log = logging.getLogger(__name__)


class Budget:
    """The stop's deadline, from the moment it was asked for."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.began = time.monotonic()

    @property
    def margin(self) -> float:
        """Kept free at the end: the last steps, and the exit itself."""
        return min(1.0, self.seconds / 10)

    def until(self, share: float) -> float:
        """Seconds from now until ``share`` of the whole budget is used (never negative)."""
        return max(0.0, self.began + self.seconds * share - time.monotonic())

    def left(self) -> float:
        """Seconds left before the margin."""
        return max(0.0, self.began + self.seconds - self.margin - time.monotonic())


def watch(stop: threading.Event, seconds: float) -> None:
    """Once ``stop`` is set, end the process ``seconds`` later (less the margin) if it is
    still there, whatever the main thread is doing."""

    def guard() -> None:
        stop.wait()
        budget = Budget(seconds)
        time.sleep(budget.left())
        leave(f"the stop took longer than KLASH_STOP_TIMEOUT ({seconds:g} s)")

    threading.Thread(target=guard, name="stop-guard", daemon=True).start()


def still_waiting(budget: Budget) -> list[threading.Thread]:
    """The threads that would keep the process from exiting, each given a moment to end
    (the daemon's own threads do not count: they end with the process)."""
    me = threading.current_thread()
    waiting = [t for t in threading.enumerate() if t is not me and not t.daemon and t.is_alive()]
    for thread in waiting:  # a worker that is just finishing
        thread.join(min(0.2, budget.left()))
    return [t for t in waiting if t.is_alive()]


def leave(why: str | None = None) -> NoReturn:
    """Exit 0 at once: work still in flight is abandoned, for the next start to repeat."""
    if why:
        log.warning("%s; abandoning the work in flight: the next start repeats it", why)
    for handler in logging.getLogger().handlers:
        handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stream
            stream.flush()
    os._exit(0)
