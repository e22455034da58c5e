"""Real CalDAV servers for the tests: Radicale and Xandikos, each on a free loopback port.

Both are the real server packages, run as WSGI applications under waitress in a
thread, with temporary storage. A ``Recorder`` in front of each counts every request
that reaches the server (so request budgets are measured at the server) and can
inject the failures a healthy server will not produce on demand: a 500, a hang, a
dropped connection, malformed XML, a 412.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waitress.server import create_server

from klash_sync.web.server import serve, shutdown

PASSWORDS = {"alice": "alice-pw-1234", "bob": "bob-pw-5678", "carol": "carol-pw-9012"}


@dataclass
class Fault:
    """What to do to matching requests."""

    kind: str  # '500', 'hang', 'badxml', '412', 'echo' ('close' is TcpProxy's job)
    path_prefix: str = "/"
    methods: tuple[str, ...] = ()
    times: int = 10**9  # how many requests to spoil


class Recorder:
    """WSGI middleware: counts requests and applies faults."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self.on_request: Callable[[str, str], None] | None = None

    def count(self, prefix: str = "/", methods: Iterable[str] | None = None) -> int:
        wanted = set(methods) if methods else None
        with self.lock:
            return sum(1 for m, p in self.requests
                       if p.startswith(prefix) and (wanted is None or m in wanted))

    def methods(self, prefix: str = "/") -> Counter:
        with self.lock:
            return Counter(m for m, p in self.requests if p.startswith(prefix))

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()

    def _fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if path.startswith(fault.path_prefix) and (not fault.methods or method in fault.methods) \
                        and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        with self.lock:
            self.requests.append((method, path))
        if self.on_request is not None:
            self.on_request(method, path)
        fault = self._fault(method, path)
        if fault is None:
            return self.app(environ, start_response)
        # Read the body so that the client is not blocked sending it.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"].read(length)
        if fault.kind == "500":
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"boom"]
        if fault.kind == "412":
            start_response("412 Precondition Failed", [("Content-Type", "text/plain")])
            return [b"precondition failed"]
        if fault.kind == "echo":  # a server that puts the request, credentials and all, in its error
            echoed = "\n".join(f"{k}: {v}" for k, v in environ.items() if k.startswith("HTTP_"))
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [echoed.encode()]
        if fault.kind == "badxml":
            start_response("207 Multi-Status", [("Content-Type", "application/xml")])
            return [b"<?xml version='1.0'?><d:multistatus xmlns:d='DAV:'><d:response><d:href>"]
        if fault.kind == "hang":
            time.sleep(4)
            start_response("504 Gateway Timeout", [("Content-Type", "text/plain")])
            return [b"late"]
        if fault.kind in ("close", "down"):
            raise ConnectionAbortedError("fault: connection closed")  # waitress drops the socket
        raise AssertionError(fault.kind)


@dataclass
class DavServer:
    """A running CalDAV server. ``base`` is http://127.0.0.1:PORT."""

    kind: str
    base: str
    recorder: Recorder
    storage: Path
    _server: Any = None
    _thread: threading.Thread | None = None
    _make: Callable[[int], Any] | None = None
    port: int = 0
    stopped: bool = False
    extra: dict = field(default_factory=dict)

    def calendar_url(self, user: str) -> str:
        """Where a user's calendars live (a principal URL, for discovery)."""
        if self.kind == "radicale":
            return f"{self.base}/{user}/"
        return f"{self.base}/user/"

    def auth(self, user: str) -> dict[str, str]:
        token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def stop(self) -> None:
        if self._server is not None and not self.stopped:
            shutdown(self._server, self._thread)
            self.stopped = True

    def start(self) -> None:
        """(Re)start on the same port."""
        assert self._make is not None
        deadline = time.monotonic() + 10
        while True:
            try:
                self._server = self._make(self.port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.port = self._server.effective_port
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=serve, args=(self._server,), daemon=True)
        self._thread.start()
        self.stopped = False


def _serve(app: Callable, port: int) -> Any:
    return create_server(app, host="127.0.0.1", port=port, threads=6, channel_timeout=30,
                         ident="test-dav")


def start_radicale(tmp: Path) -> DavServer:
    import radicale
    import radicale.config

    tmp.mkdir(parents=True, exist_ok=True)
    htpasswd = tmp / "htpasswd"
    htpasswd.write_text("".join(f"{u}:{p}\n" for u, p in PASSWORDS.items()))
    configuration = radicale.config.load()
    configuration.update({
        "auth": {"type": "htpasswd", "htpasswd_filename": str(htpasswd),
                 "htpasswd_encryption": "plain", "delay": "0"},
        "rights": {"type": "owner_only"},
        "storage": {"filesystem_folder": str(tmp / "collections")},
        "web": {"type": "none"},
    }, "test", privileged=True)
    recorder = Recorder(radicale.Application(configuration))
    server = DavServer("radicale", "", recorder, tmp, _make=lambda port: _serve(recorder, port))
    server.start()
    return server


def start_xandikos(tmp: Path) -> DavServer:
    from xandikos.web import SingleUserFilesystemBackend, XandikosApp

    tmp.mkdir(parents=True, exist_ok=True)
    backend = SingleUserFilesystemBackend(str(tmp / "data"), autocreate=True)
    backend._mark_as_principal("/user/")
    backend.create_principal("/user/", create_defaults=True)
    app = XandikosApp(backend, "/user/")
    recorder = Recorder(app.handle_wsgi_request)
    server = DavServer("xandikos", "", recorder, tmp, _make=lambda port: _serve(recorder, port))
    server.start()
    return server


def foreign_event(uid: str | None = None, summary: str = "Hammaslääkäri") -> bytes:
    """An event a mentor made themselves, in the same calendar."""
    uid = uid or f"{uuid.uuid4()}@mentor.example"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Mentor//Phone//FI\r\n"
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20191001T080000Z\r\n"
        "DTSTART:20191008T070000Z\r\nDTEND:20191008T080000Z\r\n"
        f"SUMMARY:{summary}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


class TcpProxy:
    """A TCP relay in front of a server; in mode 'close' it drops each connection unanswered.

    Closing a connection in the middle of an exchange is something a healthy WSGI server
    cannot be made to do, so this does it at the socket level.
    """

    def __init__(self, upstream_port: int) -> None:
        import socket

        self.upstream = upstream_port
        self.mode = "pass"
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._stop = False
        self.accepted = 0  # connections clients opened through the proxy
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.mode == "close":
                client.settimeout(2)
                with contextlib.suppress(OSError):
                    client.recv(65536)
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: Any, dst: Any) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(2)

    def close(self) -> None:
        self._stop = True
        self.listener.close()
