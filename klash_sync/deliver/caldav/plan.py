"""The planner: what to create, update and delete on one calendar. Pure, no I/O.

Inputs are three views of one calendar:

* ``desired``: the events the programme wants there, by UID, with their bodies and
  normalised content hashes;
* ``remote``: what the server holds now, by href, each classified as ours (our UID
  namespace *and* our marker property) or not, with the content hash where known;
* ``state``: what we last wrote there, by UID (href, ETag, hash).

The rules, in the order they are applied:

1. Anything not ours is never in a plan. This is what lets a mentor point us at
   the calendar they use every day.
2. A desired event that is on the server with the same content needs nothing (if
   the state store has forgotten it, it is adopted: recorded, not rewritten).
3. A desired event on the server with other content is updated in place, at the
   server's href and with ``If-Match`` on the ETag just listed: a reschedule is
   never delete + create. The mentor's answer on the copy (their PARTSTAT, which the
   content hash leaves out) is carried over into the new body, unless the session's
   time changed: then the copy asks again (NEEDS-ACTION), as RFC 5546 §2.1.4 allows,
   and the answer kept in the store shows as one to the earlier SEQUENCE.
4. A desired event that is not on the server is created at a safe name inside the
   collection, with ``If-None-Match: *``; if the state store knew it, somebody
   deleted it and the action says so.
5. Our event on the server that is no longer desired is deleted with ``If-Match``;
   of duplicates of one UID (a crash between two writes on a server that names
   resources itself), all but one are deleted.
6. State entries for events that are neither on the server nor desired are forgotten.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from klash_sync.deliver.base import MASS_CHANGE
from klash_sync.render.participation import Invitee, address
from klash_sync.state.store import Item


@dataclass(frozen=True)
class Desired:
    uid: str
    name: str  # safe file name for a new resource: [a-z0-9-]+.ics
    body: bytes
    hash: str
    sequence: int = 0  # the SEQUENCE in ``body``
    core: str = ""  # content hash without SEQUENCE: "same event, other number?"
    invitee: Invitee | None = None  # whom ``body`` names and asks (PARTSTAT=NEEDS-ACTION)
    when: str = ""  # its DTSTART and DTEND as ``normalise.times`` gives them
    stamp: datetime | None = None  # its LAST-MODIFIED


@dataclass(frozen=True)
class Remote:
    """One resource on the server. ``uid``/``hash`` are None when not ours or not fetched."""

    href: str
    etag: str | None
    ours: bool
    uid: str | None = None
    hash: str | None = None
    sequence: int | None = None  # known only for copies read in this sync
    core: str | None = None
    partstats: tuple[tuple[str, str], ...] = ()  # read in this sync: (attendee, PARTSTAT)
    at: datetime | None = None  # read in this sync: the copy's LAST-MODIFIED or DTSTAMP
    when: str | None = None  # read in this sync: its DTSTART and DTEND
    mine: bool = False  # at the ETag of our own last write: nothing on it is the mentor's


@dataclass(frozen=True)
class Create:
    uid: str
    href: str
    body: bytes
    hash: str
    restore: bool = False  # it was ours and somebody deleted it


@dataclass(frozen=True)
class Update:
    uid: str
    href: str
    etag: str | None
    body: bytes
    hash: str
    restore: bool = False  # content was changed on the server, not by the programme
    # to carry an answer over again after a failed If-Match; not part of what it does
    desired: Desired | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Delete:
    uid: str
    href: str
    etag: str | None
    duplicate: bool = False


@dataclass(frozen=True)
class Adopt:
    """Record an event that is already right on the server (after the state was lost)."""

    uid: str
    href: str
    etag: str | None
    hash: str


@dataclass(frozen=True)
class Forget:
    uid: str


Action = Create | Update | Delete | Adopt | Forget
_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,120}\.ics$")


_A = TypeVar("_A", Create, Update, Delete, Adopt, Forget)

@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)

    def of(self, kind: type[_A]) -> list[_A]:
        return [a for a in self.actions if isinstance(a, kind)]

    @property
    def writes(self) -> list[Create | Update | Delete]:
        return [a for a in self.actions if isinstance(a, Create | Update | Delete)]

    def counts(self) -> dict[str, int]:
        return {
            "create": len(self.of(Create)),
            "update": len(self.of(Update)),
            "delete": len(self.of(Delete)),
        }


def safe_name(uid: str) -> str:
    """A resource name derived from a UID that cannot leave the collection."""
    local = uid.split("@", 1)[0].lower()
    cleaned = re.sub(r"[^a-z0-9-]+", "-", local).strip("-")[:100] or "event"
    return f"{cleaned}.ics"


def plan(
    desired: Mapping[str, Desired],
    remote: Mapping[str, Remote],
    state: Mapping[str, Item],
    *,
    collection: str,
) -> Plan:
    """Compute the actions that make the calendar's events of ours equal to ``desired``.

    ``collection`` is the collection's path ending in '/'; new hrefs are placed in it.
    """
    result = Plan()
    by_uid: dict[str, list[Remote]] = {}
    for item in sorted(remote.values(), key=lambda r: r.href):
        if item.ours and item.uid is not None:
            by_uid.setdefault(item.uid, []).append(item)
    taken = set(remote)

    for uid, copies in by_uid.items():
        keep = _keeper(copies, state.get(uid))
        for extra in copies:
            if extra is not keep:
                result.actions.append(Delete(uid, extra.href, extra.etag, duplicate=True))
        by_uid[uid] = [keep]

    for uid in sorted(desired):
        want = desired[uid]
        known = state.get(uid)
        found = by_uid.get(uid, [None])[0]
        if found is None:
            href = known.href if known is not None and known.href not in taken else None
            if href is None:
                href = _free_href(collection, want.name, taken)
            taken.add(href)
            result.actions.append(Create(uid, href, want.body, want.hash, restore=known is not None))
        elif found.hash == want.hash:
            if known is None or known.href != found.href or known.etag != found.etag \
                    or known.hash != want.hash:
                result.actions.append(Adopt(uid, found.href, found.etag, want.hash))
        else:
            restore = known is not None and known.hash == want.hash
            body = carried(want, found.partstats, found.when)
            result.actions.append(
                Update(uid, found.href, found.etag, body, want.hash, restore=restore, desired=want)
            )

    for uid in sorted(by_uid):
        if uid not in desired:
            found = by_uid[uid][0]
            result.actions.append(Delete(uid, found.href, found.etag))

    for uid in sorted(state):
        if uid not in desired and uid not in by_uid:
            result.actions.append(Forget(uid))
    return result


def carried(want: Desired, partstats: tuple[tuple[str, str], ...], when: str | None) -> bytes:
    """The body to write over a copy: the mentor's answer on it kept, unless the time moved."""
    if want.invitee is None or when != want.when:
        return want.body
    return want.invitee.answered(want.body, dict(partstats).get(address(want.invitee.email)))


def _keeper(copies: list[Remote], known: Item | None) -> Remote:
    if known is not None:
        for item in copies:
            if item.href == known.href:
                return item
    return copies[0]


def _free_href(collection: str, name: str, taken: set[str]) -> str:
    if not _SAFE_NAME.match(name):
        name = safe_name(name)
    stem = name[: -len(".ics")]
    href = collection + name
    n = 1
    while href in taken:  # a foreign resource already has this name
        href = f"{collection}{stem}-{n}.ics"
        n += 1
    return href


def managed_count(remote: Mapping[str, Remote]) -> int:
    return sum(1 for r in remote.values() if r.ours)


def is_mass_delete(result: Plan, managed: int) -> bool:
    """More than half of the calendar's events of ours, and more than three, would go
    (the shared ``MASS_CHANGE`` guard; a duplicate's removal does not count)."""
    deletes = len([a for a in result.of(Delete) if not a.duplicate])
    return MASS_CHANGE.refuses(deletes, managed)
