"""The organiser's mailbox over IMAP (imaplib): TLS rules, login, and reading without altering.

``imaps://user@host:993/Folder`` starts in TLS; ``imap://user@host/Folder`` upgrades with
STARTTLS and refuses to log in without it, unless the host is loopback (a local Dovecot or
Cyrus). Certificates are verified against the system's trust store, as for SMTP.

Reading never changes the mailbox: the folder is opened with EXAMINE (read-only) and
messages are fetched with ``BODY.PEEK[]``, so not even the \\Seen flag moves. Only when the
operator names a folder to move handled answers to (``KLASH_IMAP_MOVE_TO``) is the folder
selected for writing, and then only those messages are moved (MOVE, RFC 6851; or COPY,
\\Deleted and UID EXPUNGE where MOVE is not offered). Sizes are asked first
(``RFC822.SIZE``), so a 20 MB message is never downloaded. The password is registered as a
secret: no log line or error can carry it.
"""

from __future__ import annotations

import imaplib
import re
import ssl
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from klash_sync.deliver.invite.smtp import _loopback
from klash_sync.errors import SettingsError
from klash_sync.logs import register_secret
from klash_sync.settings import Settings

_URL_HELP = "KLASH_IMAP_URL: write imaps://user@host[:port]/Folder or imap://user@host[:port]/Folder"


class ImapError(Exception):
    """The mailbox cannot be read now (no server, refused login, no such folder): one line."""


class NoFolder(ImapError):
    """The folder named does not exist (a move-to folder nothing was ever moved to)."""


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    mode: str  # ssl | starttls
    user: str
    folder: str
    password: str | None = field(default=None, repr=False)
    move_to: str = ""
    max_bytes: int = 2_000_000
    timeout: float = 30.0

    @property
    def key(self) -> str:
        """The mailbox's name in the store (the reader's position): no password in it."""
        scheme = "imaps" if self.mode == "ssl" else "imap"
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{self.folder}"


def imap_config(settings: Settings) -> ImapConfig | None:
    """The mailbox from KLASH_IMAP_*, or None when KLASH_IMAP_URL is empty."""
    if not settings.imap_url:
        return None
    parts = urlsplit(settings.imap_url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise SettingsError(_URL_HELP)
    if parts.password:
        raise SettingsError("KLASH_IMAP_URL: put the password in KLASH_IMAP_PASSWORD(_FILE), "
                            "not in the URL")
    try:
        port = parts.port or (993 if parts.scheme == "imaps" else 143)
    except ValueError:
        raise SettingsError("KLASH_IMAP_URL: the port is not a number") from None
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    password = settings.imap_secret()
    register_secret(password)
    return ImapConfig(unquote(parts.hostname), port, "ssl" if parts.scheme == "imaps" else "starttls",
                      unquote(parts.username), folder, password, settings.imap_move_to,
                      settings.imap_max_bytes, settings.request_timeout)


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _words(data: object) -> str:
    if isinstance(data, list | tuple):
        return " ".join(_words(d) for d in data if d is not None)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


class Mailbox:
    """One IMAP session on the configured folder; every failure is an ``ImapError``."""

    def __init__(self, config: ImapConfig) -> None:
        self.config = config
        self._imap: imaplib.IMAP4 | None = None
        self.uidvalidity = 0

    def __enter__(self) -> Mailbox:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> None:
        c = self.config
        context = ssl.create_default_context()
        try:
            if c.mode == "ssl":
                imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(c.host, c.port, ssl_context=context,
                                                        timeout=c.timeout)
            else:
                imap = imaplib.IMAP4(c.host, c.port, timeout=c.timeout)
                if "STARTTLS" in imap.capabilities:
                    imap.starttls(context)
                elif not _loopback(c.host):
                    imap.shutdown()
                    raise ImapError(f"{c.host} offers no STARTTLS; refusing to log in in plain text "
                                    "(use imaps://, or a server on loopback)")
            self._imap = imap
            self._ok(imap.login(c.user, c.password or ""), "login refused")
            status, data = imap.select(_quoted(c.folder), readonly=not c.move_to)
            if status != "OK":
                raise NoFolder(f"no folder {c.folder!r}: {_words(data)}")
            validity = imap.response("UIDVALIDITY")[1]
            self.uidvalidity = int(_words(validity[0]) if validity and validity[0] else 0)
        except ImapError:
            self.close()
            raise
        except imaplib.IMAP4.error as e:
            self.close()
            raise ImapError(f"{c.host}: {e}") from None
        except ssl.SSLError as e:
            self.close()
            raise ImapError(f"TLS failed with {c.host}: {e.reason or e}") from None
        except (OSError, EOFError) as e:
            self.close()
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
            raise ImapError(f"cannot reach {c.host}:{c.port} ({reason})") from None

    def close(self) -> None:
        imap, self._imap = self._imap, None
        if imap is None:
            return
        try:
            if imap.state == "SELECTED":
                imap.close()
            imap.logout()
        except (imaplib.IMAP4.error, OSError, EOFError):
            imap.shutdown()

    def _ok(self, answer: tuple[str, list[Any]], what: str) -> list[Any]:
        status, data = answer
        if status != "OK":
            raise ImapError(f"{what}: {_words(data)}")
        return data

    def _call(self, *args: str) -> list[Any]:
        if self._imap is None:
            raise ImapError("not connected")
        try:
            return self._ok(self._imap.uid(*args), args[0])
        except imaplib.IMAP4.error as e:
            raise ImapError(f"{args[0]}: {e}") from None
        except (OSError, EOFError) as e:
            raise ImapError(f"connection lost ({e or type(e).__name__})") from None

    def uids_after(self, last: int) -> list[int]:
        """The UIDs above ``last``, in order (``last+1:*`` names the highest UID even when it
        is lower, so that one is dropped)."""
        found = _words(self._call("SEARCH", f"UID {last + 1}:*"))
        return sorted(u for u in (int(w) for w in found.split() if w.isdigit()) if u > last)

    def sizes(self, uids: list[int]) -> dict[int, int]:
        """UID -> RFC822.SIZE, asked before anything is downloaded."""
        if not uids:
            return {}
        found: dict[int, int] = {}
        for item in self._call("FETCH", ",".join(map(str, uids)), "(UID RFC822.SIZE)"):
            text = _words(item)
            uid, size = re.search(r"UID (\d+)", text), re.search(r"RFC822\.SIZE (\d+)", text)
            if uid and size:
                found[int(uid.group(1))] = int(size.group(1))
        return found

    def fetch(self, uid: int) -> bytes | None:
        """The whole message, read without setting \\Seen; None if it is gone."""
        for item in self._call("FETCH", str(uid), "(BODY.PEEK[])"):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None

    def move(self, uids: list[int]) -> None:
        """Move these messages to ``move_to`` (only ever called when the operator set it)."""
        if not uids or not self.config.move_to:
            return
        assert self._imap is not None
        target, chosen = _quoted(self.config.move_to), ",".join(map(str, uids))
        if "MOVE" in self._imap.capabilities:
            self._call("MOVE", chosen, target)
            return
        self._call("COPY", chosen, target)
        self._call("STORE", chosen, "+FLAGS.SILENT", r"(\Deleted)")
        self._call("EXPUNGE", chosen)
