"""The embedded CalDAV server on a private loopback port, for one-shot commands.

``sync``, ``plan`` and ``purge`` reach the embedded calendars over HTTP like any other
CalDAV server; without a running daemon this serves only /dav/ on 127.0.0.1 for the
duration of the command.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from klash_sync.embedded.mount import Embedded


@contextlib.contextmanager
def loopback_server(embedded: Embedded) -> Iterator[str]:
    """Serve only /dav on a private loopback port for a one-shot command; yield its base URL
    (with the public URL's path, as the hrefs the server gives out have it)."""
    from waitress.server import create_server

    from klash_sync.web.server import serve, shutdown

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if embedded.below_mount(environ.get("PATH_INFO", "")) is not None:
            return embedded.mounted(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not found\n"]

    server = create_server(app, host="127.0.0.1", port=0, threads=4, ident="klash-sync")
    thread = threading.Thread(target=serve, args=(server,), name="embedded-dav", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}{embedded.prefix}"
    finally:
        shutdown(server, thread)
