"""The production HTTP server around the WSGI app: waitress, with limits chosen on purpose.

Each limit is here so that one slow or hostile client cannot tie the service up:
idle connections are closed after ``channel_timeout``; request lines and headers
over 16 KiB and bodies over 10 MiB are refused by waitress before our code runs;
at most ``connection_limit`` sockets are open at once. Tracebacks are never sent.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import WSGITask

from klash_sync.settings import Settings

LIMITS: dict[str, Any] = {
    "threads": 8,
    "connection_limit": 200,
    "channel_timeout": 60,           # seconds of inactivity before a connection is closed
    "cleanup_interval": 15,
    "max_request_header_size": 16 * 1024,
    "max_request_body_size": 10 * 1024 * 1024,
    "inbuf_overflow": 512 * 1024,
    "expose_tracebacks": False,
    "ident": "klash-sync",
    "asyncore_use_poll": True,       # select() breaks past 1024 file descriptors
}


class _Task(WSGITask):
    """Keeps the connection open after a 304 (and 204), which waitress closes by default.

    waitress closes an HTTP/1.1 connection after any response without Content-Length,
    including the bodiless 1xx/204/304 ones, although those end at their header section
    (RFC 9112 §6.3). A calendar client revalidating a feed with If-None-Match would then
    reconnect for every 304. Everything else keeps waitress's own decisions.
    """

    _bodiless_keepalive = False

    def build_response_header(self) -> bytes:
        self._bodiless_keepalive = (
            not self.has_body
            and self.version == "1.1"
            and not self.close_on_finish
            and self.request.headers.get("CONNECTION", "").lower() != "close"
        )
        try:
            header: bytes = super().build_response_header()
            return header
        finally:
            self._bodiless_keepalive = False

    def set_close_on_finish(self) -> None:
        if not self._bodiless_keepalive:
            super().set_close_on_finish()


class _Channel(HTTPChannel):
    task_class = _Task


def make_server(app: Any, settings: Settings, **overrides: Any) -> Any:
    """A waitress server bound to KLASH_HOST:KLASH_PORT (port 0 picks a free one)."""
    options = {**LIMITS, **overrides}
    server = create_server(app, host=settings.host, port=settings.port, **options)
    server.channel_class = _Channel
    return server


def bind(app: Any, settings: Settings, **overrides: Any) -> tuple[Any, Settings]:
    """Bind the server; when no public URL is set, links name the port really bound."""
    server = make_server(app, settings, **overrides)
    if not settings.public_url:
        settings = settings.model_copy(update={"port": server.effective_port})
    app.set_settings(settings)
    return server, settings


def bound_url(server: Any) -> str:
    host = server.effective_host
    if ":" in str(host):
        host = f"[{host}]"
    return f"http://{host}:{server.effective_port}"


def serve(server: Any) -> None:
    """Thread target for a server: its loop, quiet about sockets closed by ``shutdown``."""
    try:
        server.run()
    except Exception:
        if not getattr(server, "_klash_stopping", False):
            raise


@contextlib.contextmanager
def stop_signals(stop: threading.Event, *, reload: threading.Event | None = None) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (and SIGHUP ``reload``, when given) while the block runs.

    Main thread only, and entered first thing by ``serve`` and ``run``, before any other
    thread exists, before the lock file names them and before the port answers: a SIGHUP
    sent by ``systemctl reload`` right after a start is then remembered, never the default
    action that ends the process, and a SIGTERM during the start stops it cleanly.

    **No Python signal handler at all.** The signals are blocked in every thread (the
    mask is inherited by each thread started later) and one thread takes them with
    ``sigwait`` and sets the events, as an ordinary thread. A Python handler runs in the
    main thread between any two bytecodes, also inside itself and inside whatever the main
    thread holds: ``Event.set`` there takes the event's lock, so a signal landing while the
    main thread was inside that same event's ``wait`` deadlocked it, and a flood of
    SIGHUPs (tried: 200,000 without pause) nested handlers until a RecursionError ended
    the process. A blocked signal is kept pending by the kernel, one per kind however many
    arrive, until the thread takes it.

    Explicit signals rather than Python's KeyboardInterrupt: a process started with
    SIGINT ignored (a background job of a non-interactive shell, as CI runs the tests)
    never gets a KeyboardInterrupt, so Ctrl-C or ``kill -INT`` did nothing; and where it
    does arrive, an exception raised at an arbitrary point of waitress's loop can leave a
    half-handled connection behind.

    The signals stay blocked after the block (the command is ending; unblocking would let
    one that arrives now take its default action and change the exit code).
    """
    wanted = {signal.SIGINT: stop, signal.SIGTERM: stop}
    if reload is not None:
        wanted[signal.SIGHUP] = reload
    closing = threading.Event()
    signal.pthread_sigmask(signal.SIG_BLOCK, set(wanted))

    def relay() -> None:
        while True:
            sig = signal.sigwait(set(wanted))
            if closing.is_set():
                return
            wanted[signal.Signals(sig)].set()

    thread = threading.Thread(target=relay, name="signals", daemon=True)
    thread.start()
    try:
        yield
    finally:
        closing.set()
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pthread_kill(thread.ident or 0, signal.SIGINT)  # ends its sigwait
        thread.join(1.0)


def shutdown(server: Any, thread: threading.Thread | None = None, timeout: float = 5.0) -> None:
    """Stop a server whose loop runs in ``thread``: bounded, also with busy connections.

    The listening socket and every connection are closed inside the loop's own thread
    (waitress's trigger runs the closing there), so no socket is closed under the loop's
    feet; closing a connection also wakes a worker waiting to write to it. With nothing
    left to watch, the loop ends. Then the workers get ``timeout`` seconds to finish the
    requests they are in; requests not yet started are dropped. Every wait is bounded,
    so a stop never hangs on a client that stopped reading.
    """
    server._klash_stopping = True

    def close_sockets() -> None:
        for dispatcher in list(server._map.values()):
            with contextlib.suppress(Exception):  # a socket that is already gone
                if dispatcher is server.trigger:
                    dispatcher.del_channel()  # closed below, once no worker pulls it any more
                elif dispatcher is server:
                    wasyncore.dispatcher.close(server)  # the listener; server.close() would close the trigger
                elif isinstance(dispatcher, HTTPChannel):
                    dispatcher.handle_close()
                else:
                    dispatcher.close()

    if thread is not None and thread.is_alive():
        with contextlib.suppress(Exception):  # a half-started server
            server.trigger.pull_trigger(close_sockets)
        thread.join(timeout)
    if thread is None or thread.is_alive():
        close_sockets()  # no loop to do it (or a stuck one): do it from here
    with contextlib.suppress(Exception):
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)
    with contextlib.suppress(Exception):
        server.trigger.close()
