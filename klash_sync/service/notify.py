"""Telling systemd when the service is ready and when it stops (``sd_notify``).

With ``Type=notify`` (deploy/klash-sync.service) systemd counts the service as started
only when it says ``READY=1``, and runs ``ExecReload`` (SIGHUP) only after that. ``run``
says it once its signal handlers are in place, the port answers and the first programme
is loaded, so a ``systemctl reload`` right after ``systemctl start`` can no longer reach
the process while Python is still starting, before any handler exists, when SIGHUP's
default action would end it. ``STOPPING=1`` tells systemd a stop has begun.

The protocol is one datagram to the socket named by ``$NOTIFY_SOCKET`` (a path, or an
abstract name written with a leading ``@``); without that variable (no systemd, Docker,
a terminal) nothing is sent. Written here rather than taken from a library: it is these
few lines, and python-systemd needs libsystemd at build time.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to systemd; True if it was sent."""
    where = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not where:
        return False
    if where.startswith("@"):
        where = "\0" + where[1:]
    elif not where.startswith("/"):
        log.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract name; not telling systemd %s",
                    where, state)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(where)
            sock.sendall(state.encode())
    except OSError as e:
        log.warning("could not tell systemd %s through %s: %s", state, where.lstrip("\0"), e)
        return False
    return True
