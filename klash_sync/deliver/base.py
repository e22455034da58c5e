"""The shape every delivery channel shares, written once: protocol, results, guard, helpers.

A channel (CalDAV push, e-mail invitations, the next one) says what each recipient
should have (``desired``), reads what is there or was sent (``observe``), decides
purely what to do (``plan``) and does it (``apply``), recording every confirmed effect
before the next, so a crash loses nothing and repeats nothing. Each recipient's outcome
is a ``Result``; a pass is a ``Report`` of them, so the service above shows, retries
and counts every channel the same way.

Written once here as well: the mass-change ``Guard`` (one rule for "this would empty
most of a recipient's calendar"), ``one_line`` (an error as one safe line for the page,
``/healthz`` and the log) and ``origin`` (the server a URL names, for per-host limits).
The persisted backoff is ``klash_sync.state.backoff``: it needs only the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from klash_sync.logs import redact
from klash_sync.render.snapshot import Snapshot

_LIMIT = 300  # characters of an error shown on the status page and /healthz

# A channel's own types: what a recipient should have, what was observed, one action.
D = TypeVar("D")
O = TypeVar("O")  # noqa: E741 - the protocol's letters: Desired, Observed, Action
A = TypeVar("A")
L = TypeVar("L", contravariant=True)  # the channel's ledger (the store, the outbox)


def one_line(error: object, *, limit: int | None = _LIMIT) -> str:
    """An error (or a server's answer) as one line: whitespace folded, secrets masked, cut.

    Bytes are read as UTF-8 (a server's answer may be anything); registered secrets
    are replaced before the cut, so no prefix of a password survives either.
    """
    if isinstance(error, bytes):
        error = error.decode("utf-8", "replace")
    text = redact(" ".join(str(error).split()))
    return text if limit is None else text[:limit]


def origin(url: str) -> str:
    """The server a URL names: scheme://host:port, lower-cased, default ports filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 address keeps its brackets, so the port stays readable
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


@dataclass(frozen=True)
class Guard:
    """The mass-change rule: refuse to remove more than ``share`` of what a recipient holds
    from us, when that is also more than ``minimum`` items.

    Both channels use the same numbers (more than three, and more than half): a programme
    file saved half-written, or a mentor's list emptied by mistake, must not wipe their
    calendar; the operator lets it through explicitly (``--allow-mass-delete``,
    ``--allow-mass-cancel``). A small calendar may always be emptied: three or fewer.
    """

    minimum: int = 3
    share: float = 0.5

    def refuses(self, removing: int, holding: int) -> bool:
        """Whether removing ``removing`` of the ``holding`` items of ours is a mass change."""
        return removing > self.minimum and removing > self.share * holding


MASS_CHANGE = Guard()


@dataclass
class Result:
    """One recipient's outcome in one pass, the same for every channel.

    ``key`` names what was delivered to (a calendar, a mentor's mailbox), ``mentor`` whom
    it belongs to. ``error`` is one line (``one_line``), never a traceback. ``requests``
    counts the round trips to the recipient's server, ``seconds`` the time it took.
    """

    key: str
    mentor: str
    ok: bool = False
    error: str | None = None
    requests: int = 0
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        """What this pass changed for the recipient, by kind (channels name their own)."""
        return {}

    @property
    def changed(self) -> int:
        return sum(self.counts().values())


R = TypeVar("R", bound=Result)


@dataclass
class Report(Generic[R]):
    """One pass of a channel: every recipient's ``Result``; one failure never hides another."""

    results: list[R] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[R]:
        return [r for r in self.results if not r.ok]

    @property
    def changed(self) -> int:
        return sum(r.changed for r in self.results)


class Channel(Protocol[D, O, A, L]):
    """What every channel offers the service: four steps, the third one pure.

    * ``desired(snapshot)``: per recipient, what they should have from the programme;
    * ``observe(recipient)``: what is there (a calendar's listing) or was sent (the outbox);
    * ``plan(desired, observed, ledger)``: the actions that close the gap, computed
      without any I/O, so it can be tested and previewed exactly;
    * ``apply(actions)``: perform them in order, recording each confirmed effect in the
      ledger before the next, and report per recipient.

    Where the two channels have each step today (as functions, not yet as one class):
    CalDAV: ``caldav.jobs.jobs_for`` / ``desired_for``, ``caldav.remote.observe``,
    ``caldav.plan.plan`` with ``is_mass_delete``, ``caldav.apply.Apply``, driven per
    calendar by ``caldav.sync.Syncer.sync_one``. E-mail: the snapshot, ``invite.outbox``
    (``sent``/``pending``), ``invite.plan.plan_invitations``, ``invite.channel.send``.
    """

    name: str

    def desired(self, snapshot: Snapshot) -> Mapping[str, D]: ...

    def observe(self, recipient: str) -> O: ...

    def plan(self, desired: D, observed: O, ledger: L) -> Sequence[A]: ...

    def apply(self, actions: Sequence[A]) -> Report[Any]: ...
