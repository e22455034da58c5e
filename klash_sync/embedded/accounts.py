"""The embedded server's accounts: logins, their bcrypt hashes in htpasswd, and rights.

Access is always authenticated (Radicale's ``auth.type = none`` would let anyone read
every calendar):

* the service writes with its own account, ``klash.service`` (a name no mentor id
  can take, since ids cannot contain dots), whose random password lives in a 0600
  file in the state directory;
* each mentor gets a read-only login, user name = mentor id, to their own calendar
  and nothing else (the rights file below);
* passwords are stored only as bcrypt hashes in the htpasswd file, which ``logins``
  compares with ``bcrypt.checkpw`` before a request reaches Radicale; failures are
  limited per client and answered at once, never by sleeping on a shared thread.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path

import bcrypt

from klash_sync.logs import register_secret

SERVICE_USER = "klash.service"

# Mentors: R on their principal (a plain collection), r on the calendar in it ("klash" is
# mount.CALENDAR); the service: everything.
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
user: ([a-z0-9-]+)
collection: {0}
permissions: R

[own-calendar]
user: ([a-z0-9-]+)
collection: {0}/klash
permissions: r
"""


def _write_private(path: Path, data: str) -> None:
    """Write a file readable by its owner only, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # new and 0600, never through a symlink left under its name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(data)
    tmp.replace(path)


class Accounts:
    """The logins part of ``Embedded``: the service's account and the mentors' logins."""

    root: Path
    htpasswd: Path
    rights: Path
    readonly: bool
    service_password: str
    _lock: threading.Lock

    def _service_password(self) -> str:
        path = self.root / "service.password"
        if path.exists() or self.readonly:
            password = path.read_text(encoding="utf-8").strip()
        else:
            password = secrets.token_urlsafe(32)
            _write_private(path, password + "\n")
        register_secret(password)
        return password

    def _ensure_rights(self) -> None:
        if not self.rights.exists() or self.rights.read_text(encoding="utf-8") != _RIGHTS:
            _write_private(self.rights, _RIGHTS)

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


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
