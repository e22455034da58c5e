"""The shape every delivery channel shares, written once: the channel protocol and its values.

A channel (the CalDAV push, the e-mail invitations, the next one) is one folder under
``deliver/`` with a class satisfying ``Channel``. Per snapshot it lists its units (one
recipient: a calendar, a mentor's mailbox) and describes each as a ``Unit`` whose
signature says what the unit should receive; ``run`` delivers one unit: it reads what is
there or was sent, plans purely (``deliver/<channel>/plan.py``), applies the plan while
recording every confirmed effect before the next, and returns an ``Outcome``. Everything
else is written once above the channels, in ``service/scheduler.py``: debounce and quiet
periods, which unit is due, the persisted backoff (``state/backoff.py``), per-recipient
isolation, status for the page, ``/healthz`` and metrics, and the answer to an operator
who asked (``Ask``). Adding a channel is one new folder and one line in
``service/daemon.channels``.

Also written once here: the mass-change ``Guard`` (one rule for "this would empty most
of a recipient's calendar"), ``one_line`` (an error as one safe line for the page,
``/healthz`` and the log), ``origin`` (the server a URL names, for per-host limits), and
``Result``/``Report``, the per-recipient results of a one-shot pass that the CLI prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from klash_sync.logs import redact
from klash_sync.render.snapshot import Snapshot
from klash_sync.status import Record

_LIMIT = 300  # characters of an error shown on the status page and /healthz



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


@dataclass(frozen=True)
class Unit:
    """How the scheduler sees one unit of a channel.

    ``signature`` compares equal exactly when the unit would deliver the same thing;
    ``last``: runs after the units named in ``after`` (a calendar being left is cleaned up
    once the mentor's new calendar has been found).
    """

    key: str
    mentor: str
    signature: object
    group: str = ""
    last: bool = False
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ask:
    """An operator's request for units of a channel: run now, perhaps past the mass-change guard."""

    allow_mass: bool
    done: Callable[[str, Outcome], None]  # told each unit's outcome, from the loop's thread


@dataclass
class Outcome:
    """What one run of one unit came to."""

    ok: bool
    error: str | None = None  # one line
    counts: dict[str, int] = field(default_factory=dict)  # shown in its status record
    actions: dict[str, int] = field(default_factory=dict)  # writes, by kind, for the metrics
    failed: tuple[str, ...] = ()  # mentors whose delivery failed in this run
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)  # what an operator who asked is told
    retry: bool = True  # a failure is retried after a backoff (not when the channel retries itself)
    republish: bool = False  # the run raised the store's SEQUENCEs: publish the programme again
    done: bool = False  # the unit has made its last run (a calendar left, cleaned up)
    result: object = None  # the channel's own result, for an operator's command to print


class Channel(Protocol):
    """One way of reaching mentors, as the scheduler drives it.

    ``items(snapshot)`` are its units' work items for a programme, ``view(item)`` how the
    scheduler sees one, ``run(item, snapshot, ask)`` delivers it (observe, plan, apply,
    record) and never raises for a recipient's failure. ``retry_due`` names the units
    whose retry time, kept by the channel itself, has come; ``status`` gives the records of
    a channel that keeps its own (``reports``); ``close`` releases connections once the
    runs have finished.
    """

    name: str  # "caldav"
    section: str  # how status, /healthz and /metrics name its units: "calendars"
    unit: str | None  # a record's key on /healthz, when it is not the mentor: "calendar"
    levels: tuple[str, ...]  # counts that are current levels (gauges on /metrics)
    workers: int
    per_group: int
    quiet: float  # seconds the programme must be quiet before a change is delivered
    reports: bool  # keeps its status itself (read with ``status``), rather than per run

    def items(self, snapshot: Snapshot) -> Iterable[Any]: ...

    def view(self, item: Any) -> Unit: ...

    def run(self, item: Any, snapshot: Snapshot, ask: Ask | None) -> Outcome: ...

    def retry_due(self) -> set[str]: ...

    def status(self, snapshot: Snapshot | None) -> tuple[list[Record], list[str]] | None: ...

    def close(self, finished: bool) -> None: ...


