"""Secret feed addresses, like Google Calendar's "secret address in iCal format".

A mentor's private address carries a token derived with HMAC-SHA256 from the server
secret, the mentor id and a generation number. Nothing about the token is stored:
it is recomputed and compared in constant time. Rotating a mentor's address bumps
their generation, which invalidates the old token for good. A wrong or old token is
answered exactly like an unknown mentor, so an address cannot be probed.

Answer links (``/rsvp/{token}``) are derived from the same key: one token per mentor and
session, an HMAC keyed by the mentor's feed token, so ``feeds rotate`` ends them too and
nothing about them is stored either. The token names the mentor and the session in the
clear (both are on the public page anyway) and carries 128 bits of MAC, so it is checked
without a search and cannot be guessed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable

from klash_sync.errors import SettingsError
from klash_sync.logs import register_secret
from klash_sync.settings import Settings
from klash_sync.state.store import Store

_PREFIX = "feed-generation:"
_ANSWER = re.compile(r"^(?P<mentor>[a-z0-9-]{1,64})\.(?P<session>[a-z0-9-]{1,64})\."
                     r"(?P<mac>[A-Za-z0-9_-]{22})$")


def token(secret: bytes, mentor_id: str, generation: int) -> str:
    mac = hmac.new(secret, f"klash-feed\x00{mentor_id}\x00{generation}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:20]).decode().rstrip("=")  # 160 bits


def generation(store: Store, mentor_id: str) -> int:
    value = store.get(_PREFIX + mentor_id)
    return int(value) if value else 0


def rotate(store: Store, mentor_id: str) -> int:
    new = generation(store, mentor_id) + 1
    store.set(_PREFIX + mentor_id, str(new))
    return new


class FeedKeys:
    """Checks and makes private feed tokens for one server secret."""

    def __init__(self, secret: bytes, store: Store) -> None:
        self.secret = secret
        self.store = store

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> FeedKeys | None:
        secret = settings.server_secret()
        if settings.private_feeds and not secret:
            raise SettingsError(
                "KLASH_PRIVATE_FEEDS is on but there is no secret: set KLASH_SECRET or "
                "KLASH_SECRET_FILE (make one with: python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        if secret is not None and len(secret) < 16:
            raise SettingsError("the server secret must be at least 16 characters long")
        register_secret(secret)
        return cls(secret, store) if secret else None

    def token(self, mentor_id: str) -> str:
        return token(self.secret, mentor_id, generation(self.store, mentor_id))

    def valid(self, mentor_id: str, given: str) -> bool:
        return hmac.compare_digest(self.token(mentor_id).encode(), given.encode("utf-8", "replace"))

    def answer_token(self, mentor_id: str, session_id: str) -> str:
        """The token of a mentor's answer link for one session (``/rsvp/{token}``)."""
        key = self.token(mentor_id).encode()
        mac = hmac.new(key, f"klash-rsvp\x00{session_id}".encode(), hashlib.sha256).digest()[:16]
        return f"{mentor_id}.{session_id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def answer_of(self, given: str) -> tuple[str, str] | None:
        """(mentor, session) of a valid answer token; None for a wrong or rotated one."""
        m = _ANSWER.match(given)
        if m is None:
            return None
        wanted = self.answer_token(m["mentor"], m["session"])
        return (m["mentor"], m["session"]) if hmac.compare_digest(wanted.encode(), given.encode()) else None


def answer_url(base_url: str, keys: FeedKeys, mentor: str, session: str) -> str:
    """The absolute address of a mentor's answer page for one session."""
    return f"{base_url}/rsvp/{keys.answer_token(mentor, session)}"


def answer_links(settings: Settings, keys: FeedKeys | None) -> Callable[[str, str], str] | None:
    """(mentor, session) -> answer page, for invitations: only with a secret and a public
    address (an e-mail is read on a phone, where the address the server listens on is no use)."""
    if keys is None or not settings.public_url:
        return None
    return lambda mentor, session: answer_url(settings.public_url, keys, mentor, session)


def token_id(given: str) -> str:
    """A name for a token that gives nothing away (the answers' ``source``): not the token."""
    return hashlib.sha256(given.encode()).hexdigest()[:16]
