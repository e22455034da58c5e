"""Secret feed addresses, like Google Calendar's "secret address in iCal format".

A mentor's private address carries a token derived with HMAC-SHA256 from the server
secret, the mentor id and a generation number. Nothing about the token is stored:
it is recomputed and compared in constant time. Rotating a mentor's address bumps
their generation, which invalidates the old token for good. A wrong or old token is
answered exactly like an unknown mentor, so an address cannot be probed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from klash_sync.errors import SettingsError
from klash_sync.logs import register_secret
from klash_sync.settings import Settings
from klash_sync.state.store import Store

_PREFIX = "feed-generation:"


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
