"""A CalDAV server for the benchmark, in its own process, counting requests at the server.

`python -m bench.davserver radicale|xandikos DIR USERS` prints its port on stdout, then
serves until killed. GET /__bench__/count answers the requests seen so far (by method),
POST /__bench__/reset zeroes them; neither is counted.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from pathlib import Path

from waitress.server import create_server

PASSWORD = "bench-pw"


def make_app(kind: str, root: Path, users: int):
    if kind == "radicale":
        import radicale
        import radicale.config

        htpasswd = root / "htpasswd"
        htpasswd.write_text("".join(f"u{n}:{PASSWORD}\n" for n in range(users)))
        configuration = radicale.config.load()
        configuration.update({
            "auth": {"type": "htpasswd", "htpasswd_filename": str(htpasswd),
                     "htpasswd_encryption": "plain", "delay": "0", "cache_logins": "True"},
            "rights": {"type": "owner_only"},
            "storage": {"filesystem_folder": str(root / "collections")},
            "web": {"type": "none"},
            "logging": {"level": "warning"},
        }, "bench", privileged=True)
        return radicale.Application(configuration)
    from xandikos.web import SingleUserFilesystemBackend, XandikosApp

    backend = SingleUserFilesystemBackend(str(root / "data"), autocreate=True)
    backend._mark_as_principal("/user/")
    backend.create_principal("/user/", create_defaults=True)
    return XandikosApp(backend, "/user/").handle_wsgi_request


def with_length(app, environ, start_response):
    """Give every answer a Content-Length, so waitress keeps the connection open.

    waitress closes an HTTP/1.1 connection after any answer without one (Radicale's
    201s and 204s), which a server behind nginx, or Radicale's own server, does not do:
    the benchmark would count a new connection per write that is the test rig's doing.
    """
    captured: dict = {}

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return lambda data: captured.setdefault("early", []).append(data)

    result = app(environ, capture)
    try:
        body = b"".join([*captured.get("early", []), *result])
    finally:
        if hasattr(result, "close"):
            result.close()
    headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
    status = captured["status"]
    if not status.startswith(("204", "304")) and not status.startswith("1"):
        headers.append(("Content-Length", str(len(body))))
    start_response(status, headers)
    return [body]


def main() -> int:
    kind, root, users = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    root.mkdir(parents=True, exist_ok=True)
    inner = make_app(kind, root, users)
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/__bench__/"):
            with lock:
                if path.endswith("reset"):
                    counts.clear()
                body = json.dumps(dict(counts)).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        with lock:
            counts[environ["REQUEST_METHOD"]] += 1
        return with_length(inner, environ, start_response)

    server = create_server(app, host="127.0.0.1", port=0, threads=8, connection_limit=500,
                           channel_timeout=120, ident="bench-dav")
    print(server.effective_port, flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
