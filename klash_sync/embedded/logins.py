"""Logins to the embedded server, checked before Radicale: a wrong password costs the attacker.

Radicale's own answer to a wrong password is to sleep (``auth.delay``) on the thread that
serves the request, and those threads are the ones that serve feeds, the page and
``/healthz``: 40 clients sending wrong passwords held every worker asleep (feed median
2 ms -> 5 s). So ``/dav/`` checks credentials itself, before Radicale, and never sleeps:

* the ``Authorization`` header is parsed here; anything that is not Basic credentials
  (another scheme, an empty value) is 401 with a Basic challenge, and Basic credentials
  that cannot be decoded (not base64, no colon, not UTF-8) are 400. Never a 500;
* the password is compared with bcrypt against the htpasswd file that ``accounts``
  writes (an unknown user against a dummy hash, so the time does not tell which users
  exist); Radicale is then told who the user is (``REMOTE_USER``) and does no check,
  no sleep of its own;
* every client address has a budget of failed logins: ``BURST`` failures at once, then one
  more every ``REFILL`` seconds (a token bucket). Over budget, the answer is 429 with
  ``Retry-After`` at once, without running bcrypt: the attacker's next guess costs us a
  dictionary look-up. A mentor who mistypes gets 5 tries, then one a minute, which is what
  a person needs; a guesser gets 60 guesses an hour per address instead of the 3,600 a
  one-second delay allowed. IPv6 clients are counted per /64, the block one subscriber
  usually gets;
* one password is checked at a time (bcrypt is about 90 ms of CPU here): a request that
  would need a check while another runs is answered 503 with ``Retry-After: 1`` at once
  and is not counted as a failure. bcrypt runs in one thread of its own at the lowest
  priority (nice 19), so it gets only the CPU that serving leaves over. So guessers from
  many addresses keep at most one worker thread waiting for a check and never take the
  CPU from the others, which serve feeds, the page and ``/healthz``;
* credentials that passed bcrypt are remembered (a keyed SHA-256, never the password) for
  ``REMEMBER`` seconds, until the htpasswd file changes: the service's syncer and a
  mentor's app send the same credentials on every request, and bcrypt per request would
  cost about 50 ms of CPU each. Remembered credentials pass even over budget, so a client
  that logged in before is not locked out by someone guessing from the same address.

Caveats: behind a reverse proxy every client has the proxy's address, so the budget is
shared by all of them (remembered logins still pass). An app that sends its first
requests in parallel, before its login is remembered, may get a 503 for all but one and
retries. ``MAX_CLIENTS`` bounds the memory the counters take, forgetting the oldest when
full.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bcrypt

log = logging.getLogger(__name__)

BURST = 5            # failed logins a client may make at once
REFILL = 60.0        # seconds for one more failed login to be allowed
REMEMBER = 300.0     # seconds a login that passed bcrypt is accepted without bcrypt
MAX_CLIENTS = 10_000  # client addresses whose failures are counted at once
MAX_HEADER = 4096    # longer Authorization values are refused without decoding
CHECKS_AT_ONCE = 1   # bcrypt checks running at once, in all (one core of the two we size for)
CHECK_TIMEOUT = 10.0  # seconds a check may take on an overloaded machine before a 503

# A hash to compare against for users that do not exist, so both take bcrypt's time.
_DUMMY = bcrypt.hashpw(b"klash-sync: no such user", bcrypt.gensalt(rounds=10))


@dataclass(frozen=True)
class Verdict:
    """What to do with a request to /dav/: ``user`` to pass it on, else ``status`` to answer."""

    user: str = ""
    status: int = 0
    retry_after: int = 0
    reason: str = ""


class Malformed(ValueError):
    """An Authorization header that carries no usable Basic credentials."""


def parse_basic(header: str) -> tuple[str, str]:
    """Decode Basic credentials (RFC 7617); raise ``Malformed`` for anything else."""
    if len(header) > MAX_HEADER:
        raise Malformed("too long")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise Malformed("not Basic")
    token = token.strip()
    if not token:
        raise Malformed("no credentials")
    try:
        raw = base64.b64decode(token.encode("ascii"), validate=True)
        text = raw.decode("utf-8")
    except (UnicodeError, binascii.Error, ValueError) as e:
        raise Malformed("not base64 of UTF-8") from e
    user, colon, password = text.partition(":")
    if not colon or not user:
        raise Malformed("no user:password")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise Malformed("control characters")
    return user, password


def _lowest_priority() -> None:
    """Run this thread at nice 19 (Linux renices threads one by one): bcrypt then takes only
    the CPU that serving feeds and /healthz leaves over."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


# The one thread that runs bcrypt, at the lowest priority; a worker waits for its answer.
_CHECKER = concurrent.futures.ThreadPoolExecutor(1, "klash-login-check", _lowest_priority)


def _checkpw(password: str, digest: bytes | None) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), digest or _DUMMY) and digest is not None
    except ValueError:  # a damaged line in htpasswd, a password over 72 bytes
        return False


def client_key(address: str) -> str:
    """The key a client's failures are counted under: its address, an IPv6 one by /64."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Failures:
    """Failed logins per client: a token bucket of ``burst`` that refills one per ``refill`` s."""

    def __init__(self, now: Callable[[], float] = time.monotonic, *, burst: int = BURST,
                 refill: float = REFILL, max_clients: int = MAX_CLIENTS) -> None:
        self._now = now
        self._burst = burst
        self._refill = refill
        self._max = max_clients
        self._lock = threading.Lock()
        self._used: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (used, at)

    def _current(self, key: str, now: float) -> float:
        used, at = self._used.get(key, (0.0, now))
        return max(0.0, used - (now - at) / self._refill)

    def wait(self, key: str) -> int:
        """Seconds until ``key`` may try again (0: it may now)."""
        with self._lock:
            used = self._current(key, self._now())
        if used <= self._burst - 1:
            return 0
        return max(1, math.ceil((used - (self._burst - 1)) * self._refill))

    def failed(self, key: str) -> None:
        with self._lock:
            now = self._now()
            self._used[key] = (self._current(key, now) + 1, now)
            self._used.move_to_end(key)
            while len(self._used) > self._max:
                self._used.popitem(last=False)

    def __len__(self) -> int:
        return len(self._used)


class Logins:
    """Checks Basic credentials against the htpasswd file, with ``Failures`` per client."""

    def __init__(self, htpasswd: Path, *, failures: Failures | None = None,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.htpasswd = htpasswd
        self.failures = failures or Failures(now)
        self._now = now
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._hashes: dict[str, bytes] = {}
        self._good: dict[str, tuple[bytes, float]] = {}  # user -> (keyed digest, until)
        self._checking = threading.BoundedSemaphore(CHECKS_AT_ONCE)
        self._trusted: dict[str, bytes] = {}  # user -> keyed digest, never forgotten

    def trust(self, user: str, password: str) -> None:
        """Accept these credentials without bcrypt: the service's own, which its syncer sends
        from many threads at once, and which must never wait for a check or get a 503."""
        self._trusted[user] = self._digest(user, password)

    def _table(self) -> dict[str, bytes]:
        """The htpasswd file's users and hashes, read again when the file changes."""
        try:
            st = self.htpasswd.stat()
            seen = (st.st_mtime_ns, st.st_ino)
        except OSError:
            seen = (0, 0)
        with self._lock:
            if seen != self._seen:
                hashes: dict[str, bytes] = {}
                try:
                    text = self.htpasswd.read_text(encoding="utf-8") if seen != (0, 0) else ""
                except (OSError, UnicodeError) as e:  # no mentor can log in; the service still can
                    log.warning("cannot read the embedded server's logins in %s (%s); "
                                "run `klash-sync accounts` to write them again", self.htpasswd, e)
                    text = ""
                for line in text.splitlines():
                    user, sep, digest = line.partition(":")
                    if sep:
                        hashes[user] = digest.encode()
                self._hashes, self._good, self._seen = hashes, {}, seen
            return self._hashes

    def _digest(self, user: str, password: str) -> bytes:
        return hmac.new(self._key, f"{user}\0{password}".encode(), hashlib.sha256).digest()

    def _remembered(self, user: str, password: str) -> bool:
        entry = self._good.get(user)
        return (entry is not None and entry[1] > self._now()
                and hmac.compare_digest(entry[0], self._digest(user, password)))

    def check(self, authorization: str | None, remote_addr: str) -> Verdict:
        """The verdict on one request's credentials; never sleeps, never raises."""
        if not authorization:
            return Verdict(status=401, reason="no credentials")
        try:
            user, password = parse_basic(authorization)
        except Malformed as e:
            scheme = authorization.strip().partition(" ")[0].lower()
            return Verdict(status=400 if scheme == "basic" else 401, reason=str(e))
        table = self._table()
        trusted = self._trusted.get(user)
        if trusted is not None and hmac.compare_digest(trusted, self._digest(user, password)):
            return Verdict(user=user)
        if self._remembered(user, password):
            return Verdict(user=user)
        key = client_key(remote_addr)
        wait = self.failures.wait(key)
        if wait:
            return Verdict(status=429, retry_after=wait, reason="too many failed logins")
        if not self._checking.acquire(blocking=False):  # never wait: answer, and let it retry
            return Verdict(status=503, retry_after=1, reason="checking other logins")
        digest = table.get(user)
        try:
            ok = _CHECKER.submit(_checkpw, password, digest).result(timeout=CHECK_TIMEOUT)
        except concurrent.futures.TimeoutError:  # the machine is overloaded: let it retry
            return Verdict(status=503, retry_after=1, reason="checking other logins")
        finally:
            self._checking.release()
        if not ok:
            self.failures.failed(key)
            return Verdict(status=401, reason="wrong user or password")
        with self._lock:
            if self._hashes is table:  # not if the file changed (a reset) while bcrypt ran
                self._good[user] = (self._digest(user, password), self._now() + REMEMBER)
        return Verdict(user=user)
