"""The embedded CalDAV server: Radicale as a WSGI library, mounted by our server at /dav/.

Mentors without a CalDAV server of their own get a calendar here, so the whole job
works on a fresh machine. Access is always authenticated; the accounts (the
service's, one read-only login per mentor) and their rights are kept by ``accounts``.

The layout is the one calendar apps discover from the server address alone (RFC 6764
and RFC 4791 section 6.2): a mentor's principal is ``/dav/<mentor-id>/``, which is also
their calendar home, and the one calendar in it is ``/dav/<mentor-id>/klash/``. Radicale
creates a principal only for users who may write it, and mentors may not, so we create
each mentor's principal ourselves. Releases up to 443571d kept the calendars under the
service's own principal (``/dav/klash.service/<mentor-id>/``), where no app looks;
``migrate()`` moves them at start, one atomic directory rename each, and old addresses
still typed into apps are redirected.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from klash_sync.embedded.accounts import SERVICE_USER, Accounts
from klash_sync.embedded.logins import Logins, Verdict

__all__ = ["CALENDAR", "MOUNT", "SERVICE_USER", "Embedded"]

log = logging.getLogger(__name__)

MOUNT = "/dav"
CALENDAR = "klash"  # the one calendar in each mentor's home (the rights file names it too)
_MENTOR_ID = re.compile(r"[a-z0-9-]{1,64}")
# Before the move: /klash.service/<mentor-id>/..., as seen by Radicale below the mount.
_OLD_PLACE = re.compile(r"^/klash\.service/(?P<id>[a-z0-9-]{1,64})/(?P<rest>.*)$", re.DOTALL)
_READS = frozenset({"GET", "HEAD", "PROPFIND", "REPORT", "OPTIONS"})


class Embedded(Accounts):
    """Radicale configured for klash-sync, with its accounts, under ``state_dir/dav``.

    ``prefix`` is the path of the public URL (``/klash`` for ``https://host/klash``): behind
    a reverse proxy at a sub-path, every href Radicale sends must carry it, or an app
    follows them out of the proxy's path.
    """

    def __init__(self, state_dir: Path, *, prefix: str = "", readonly: bool = False) -> None:
        self.prefix = prefix.rstrip("/")
        self.readonly = readonly
        self.root = state_dir / "dav"
        self.htpasswd = self.root / "htpasswd"
        self.rights = self.root / "rights"
        self.storage = self.root / "collections"
        self._lock = threading.Lock()
        self._app: Any = None
        self.logins = Logins(self.htpasswd)  # checked before Radicale, never asleep (logins.py)
        if readonly:
            # For commands that change nothing (`plan`): use what a writer set up, as it is.
            self.service_password = self._service_password()
            self.logins.trust(SERVICE_USER, self.service_password)
            return
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.storage / "collection-root").mkdir(parents=True, exist_ok=True, mode=0o700)
        self.service_password = self._service_password()
        self.logins.trust(SERVICE_USER, self.service_password)  # the syncer never waits on bcrypt
        self._ensure_rights()
        self._ensure_service_account()
        self.migrate()

    @staticmethod
    def is_set_up(state_dir: Path) -> bool:
        """Whether a writer has created the embedded server's storage and service account."""
        return (state_dir / "dav" / "service.password").exists()

    # ------------------------------------------------------------- storage

    @property
    def _collections(self) -> Path:
        return self.storage / "collection-root"

    @contextlib.contextmanager
    def _storage_lock(self) -> Iterator[None]:
        """Radicale's own exclusive storage lock, so no request sees a half-done change."""
        from radicale.pathutils import RwLock

        with RwLock(str(self.storage / ".Radicale.lock")).acquire("w"):
            yield

    def migrate(self) -> list[str]:
        """Move calendars from the old place (under the service's principal) into mentors' homes.

        Idempotent and crash-safe: each calendar moves with one ``rename`` of its
        directory (events, ETags and Radicale's sync history move with it, byte for
        byte); a calendar already at its new place is never overwritten. Returns the
        mentor ids whose calendar moved.
        """
        old_home = self._collections / SERVICE_USER
        if not old_home.is_dir():
            return []
        moved = []
        with self._storage_lock():
            for old in sorted(old_home.iterdir()):
                if not old.is_dir() or not _MENTOR_ID.fullmatch(old.name):
                    continue
                home = self._collections / old.name
                new = home / CALENDAR
                if new.exists():
                    log.warning("the calendar of %s exists both at %s and at %s; kept the new one, "
                                "left the old one untouched", old.name, old, new)
                    continue
                home.mkdir(mode=0o700, exist_ok=True)
                old.rename(new)
                _sync_dir(old_home)
                _sync_dir(home)
                moved.append(old.name)
        if moved:
            log.info("moved %d embedded calendars to the mentors' own homes: %s", len(moved),
                     ", ".join(moved))
        return moved

    def ensure_home(self, mentor_id: str) -> None:
        """Create the mentor's principal (= calendar home) collection if it is missing.

        Radicale would create it only at the login of a user who may write it; mentors
        may not, and without it their app's discovery ends in a 404.
        """
        if not _MENTOR_ID.fullmatch(mentor_id):
            raise ValueError(f"not a mentor id: {mentor_id!r}")
        home = self._collections / mentor_id
        if home.is_dir() or self.readonly:
            return
        with self._storage_lock():
            home.mkdir(mode=0o700, exist_ok=True)
            _sync_dir(self._collections)

    # ----------------------------------------------------------------- WSGI

    def app(self) -> Any:
        """The Radicale WSGI application, configured once."""
        with self._lock:
            if self._app is None:
                import radicale
                import radicale.config

                configuration = radicale.config.load()
                configuration.update({
                    # ``mounted`` has checked the password (logins.py) and names the user in
                    # REMOTE_USER, which no HTTP header can set. Radicale's delay is off: it
                    # slept on the threads that also serve feeds and /healthz.
                    "auth": {"type": "remote_user", "delay": "0"},
                    "rights": {"type": "from_file", "file": str(self.rights)},
                    "storage": {"filesystem_folder": str(self.storage)},
                    "web": {"type": "none"},
                    "logging": {"mask_passwords": "True"},
                }, "klash-sync", privileged=True)
                self._app = radicale.Application(configuration)
            return self._app

    def below_mount(self, path: str) -> str | None:
        """The part of ``path`` below the mount ("/" at least), or None if it is not for us.

        Requests come at /dav/... (directly, or from a proxy that strips its sub-path) or
        at <prefix>/dav/... (from a proxy that keeps it, and from our own syncer, which
        uses the hrefs Radicale gives it).
        """
        for mount in ((self.prefix + MOUNT, MOUNT) if self.prefix else (MOUNT,)):
            if path == mount or path.startswith(mount + "/"):
                return path[len(mount):] or "/"
        return None

    def mounted(self, environ: dict, start_response: Any) -> Iterable[bytes]:
        """WSGI entry for requests under /dav: Radicale sees <prefix>/dav as its SCRIPT_NAME."""
        below = self.below_mount(environ.get("PATH_INFO", ""))
        if below is None:
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
            return [b"Not found\n"]
        inner = dict(environ)
        inner["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.prefix + MOUNT
        inner["PATH_INFO"] = below
        inner.pop("HTTP_X_SCRIPT_NAME", None)  # a client must not move the mount point
        old = _OLD_PLACE.match(inner["PATH_INFO"])
        if old and environ.get("REQUEST_METHOD", "GET") in _READS:
            # An app set up with the address printed by an older release keeps working.
            # 308 keeps a PROPFIND's or REPORT's method and body; 301 is what GET needs.
            status = "301 Moved Permanently" if environ.get("REQUEST_METHOD") in ("GET", "HEAD") \
                else "308 Permanent Redirect"
            rest = quote(old["rest"].encode("latin-1", "replace"), safe="/@:+,;=~!$&'()*")
            where = inner["SCRIPT_NAME"] + f"/{old['id']}/{CALENDAR}/{rest}"
            start_response(status, [("Location", where), ("Content-Type", "text/plain"),
                                    ("Content-Length", "0"), ("Cache-Control", "no-store")])
            return []
        verdict = self.logins.check(environ.get("HTTP_AUTHORIZATION"), environ.get("REMOTE_ADDR", ""))
        if not verdict.user:
            return _refuse(verdict, environ.get("REMOTE_ADDR", "?"), start_response)
        inner.pop("HTTP_AUTHORIZATION", None)
        inner["REMOTE_USER"] = verdict.user
        return self.app()(inner, start_response)

    # ------------------------------------------------------------ addresses

    @staticmethod
    def calendar_path(mentor_id: str) -> str:
        """The mentor's calendar collection, below the site root."""
        return f"{MOUNT}/{mentor_id}/{CALENDAR}/"

    @staticmethod
    def principal_path(mentor_id: str) -> str:
        """The mentor's principal, which is also their calendar home."""
        return f"{MOUNT}/{mentor_id}/"

    @staticmethod
    def server_path() -> str:
        """What to type into a calendar app as the server: the DAV root, which discovers the rest."""
        return f"{MOUNT}/"


_REFUSALS = {
    400: ("400 Bad Request", b"The Authorization header is not valid Basic credentials\n"),
    401: ("401 Unauthorized", b"Log in with your klash-sync user name and password\n"),
    429: ("429 Too Many Requests", b"Too many failed logins from your address; try again later\n"),
    503: ("503 Service Unavailable", b"Busy checking other logins; try again in a second\n"),
}


def _refuse(verdict: Verdict, client: str, start_response: Any) -> Iterable[bytes]:
    """Answer a request whose credentials did not pass, at once: nothing here waits."""
    if verdict.status == 401 and verdict.reason == "wrong user or password":
        log.info("failed login to the embedded CalDAV server from %s", client)
    status, body = _REFUSALS[verdict.status]
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
               ("Cache-Control", "no-store")]
    if verdict.status == 401:
        headers.append(("WWW-Authenticate", 'Basic realm="klash-sync", charset="UTF-8"'))
    if verdict.status in (429, 503):
        headers.append(("Retry-After", str(verdict.retry_after)))
    start_response(status, headers)
    return [body]


def _sync_dir(path: Path) -> None:
    """Make a rename or mkdir in ``path`` durable (as Radicale does for its own changes)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

