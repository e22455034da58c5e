"""The embedded CalDAV server: Radicale as a WSGI library, mounted by our server at /dav/.

Mentors without a CalDAV server of their own get a calendar here, so the whole job
works on a fresh machine. Access is always authenticated (Radicale's
``auth.type = none`` would let anyone read every calendar):

* the service writes with its own account, ``klash.service`` (a name no mentor id
  can take, since ids cannot contain dots), whose random password lives in a 0600
  file in the state directory;
* each mentor gets a read-only login, user name = mentor id, to their own calendar
  ``/dav/klash.service/<mentor-id>/`` and nothing else;
* passwords are stored only as bcrypt hashes in Radicale's htpasswd file, which
  Radicale compares with ``bcrypt.checkpw`` (constant time) and delays failures.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import bcrypt

from ..logs import register_secret

log = logging.getLogger(__name__)

SERVICE_USER = "klash.service"
MOUNT = "/dav"

_RIGHTS = """\
# Written by klash-sync; edits are overwritten at start.
[service]
user: klash\\.service
collection: .*
permissions: RrWw

[root]
user: .+
collection:
permissions: R

[own-principal]
user: (.+)
collection: {user}
permissions: R

[own-calendar]
user: ([a-z0-9-]+)
collection: klash\\.service/{0}
permissions: r
"""


def _write_private(path: Path, data: str) -> None:
    """Write a file readable by its owner only, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(data)
    tmp.replace(path)


class Embedded:
    """Radicale configured for klash-sync, with its accounts, under ``state_dir/dav``."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "dav"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.htpasswd = self.root / "htpasswd"
        self.rights = self.root / "rights"
        self.storage = self.root / "collections"
        (self.storage / "collection-root").mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._app: Any = None
        self.service_password = self._service_password()
        self.rights.write_text(_RIGHTS, encoding="utf-8")
        self._ensure_service_account()

    # ------------------------------------------------------------ accounts

    def _service_password(self) -> str:
        path = self.root / "service.password"
        if path.exists():
            password = path.read_text(encoding="utf-8").strip()
        else:
            password = secrets.token_urlsafe(32)
            _write_private(path, password + "\n")
        register_secret(password)
        return password

    def _accounts(self) -> dict[str, str]:
        if not self.htpasswd.exists():
            return {}
        accounts = {}
        for line in self.htpasswd.read_text(encoding="utf-8").splitlines():
            user, sep, digest = line.partition(":")
            if sep:
                accounts[user] = digest
        return accounts

    def _save(self, accounts: dict[str, str]) -> None:
        _write_private(self.htpasswd, "".join(f"{u}:{h}\n" for u, h in sorted(accounts.items())))

    def _ensure_service_account(self) -> None:
        with self._lock:
            accounts = self._accounts()
            digest = accounts.get(SERVICE_USER)
            if digest and bcrypt.checkpw(self.service_password.encode(), digest.encode()):
                return
            accounts[SERVICE_USER] = _hash(self.service_password)
            self._save(accounts)

    def has_login(self, mentor_id: str) -> bool:
        return mentor_id in self._accounts()

    def set_password(self, mentor_id: str) -> str:
        """Give a mentor a new random read-only password; return it (shown once, never stored)."""
        password = secrets.token_urlsafe(12)
        with self._lock:
            accounts = self._accounts()
            accounts[mentor_id] = _hash(password)
            self._save(accounts)
        return password

    def remove_logins(self, keep: Iterable[str]) -> list[str]:
        """Remove the logins of mentors no longer in the programme."""
        wanted = set(keep) | {SERVICE_USER}
        with self._lock:
            accounts = self._accounts()
            gone = sorted(u for u in accounts if u not in wanted)
            if gone:
                self._save({u: h for u, h in accounts.items() if u in wanted})
        return gone

    # ----------------------------------------------------------------- WSGI

    def app(self) -> Any:
        """The Radicale WSGI application, configured once."""
        with self._lock:
            if self._app is None:
                import radicale
                import radicale.config

                configuration = radicale.config.load()
                configuration.update({
                    "auth": {
                        "type": "htpasswd",
                        "htpasswd_filename": str(self.htpasswd),
                        "htpasswd_encryption": "bcrypt",
                        "delay": "1",
                    },
                    "rights": {"type": "from_file", "file": str(self.rights)},
                    "storage": {"filesystem_folder": str(self.storage)},
                    "web": {"type": "none"},
                    "logging": {"mask_passwords": "True"},
                }, "klash-sync", privileged=True)
                self._app = radicale.Application(configuration)
            return self._app

    def mounted(self, environ: dict, start_response: Any) -> Iterable[bytes]:
        """WSGI entry for requests under /dav: Radicale sees /dav as its SCRIPT_NAME."""
        path = environ.get("PATH_INFO", "")
        inner = dict(environ)
        inner["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + MOUNT
        inner["PATH_INFO"] = path[len(MOUNT):] or "/"
        inner.pop("HTTP_X_SCRIPT_NAME", None)  # a client must not move the mount point
        return self.app()(inner, start_response)

    # ------------------------------------------------------------ addresses

    @staticmethod
    def calendar_path(mentor_id: str) -> str:
        return f"{MOUNT}/{SERVICE_USER}/{mentor_id}/"


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()


@contextlib.contextmanager
def loopback_server(embedded: Embedded) -> Iterator[str]:
    """Serve only /dav on a private loopback port for a one-shot command; yield its base URL."""
    from waitress.server import create_server

    from ..server import serve, shutdown

    def app(environ: dict, start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(MOUNT + "/"):
            return embedded.mounted(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not found\n"]

    server = create_server(app, host="127.0.0.1", port=0, threads=4, ident="klash-sync")
    thread = threading.Thread(target=serve, args=(server,), name="embedded-dav", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        shutdown(server, thread)
