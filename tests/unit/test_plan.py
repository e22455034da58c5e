"""The planner: unit cases, and a Hypothesis state machine over edits and foreign changes that
drives the real sync of one calendar against the in-memory calendar."""

from __future__ import annotations

import functools
import itertools
import re
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from klash_sync.deliver.caldav.calendar import Endpoint
from klash_sync.deliver.caldav.plan import (
    Adopt,
    Create,
    Delete,
    Desired,
    Forget,
    Remote,
    Update,
    is_mass_delete,
    plan,
    safe_name,
)
from klash_sync.deliver.caldav.sync import Job, Syncer, session_of
from klash_sync.render.normalise import Seen, inspect
from klash_sync.settings import Settings
from klash_sync.state.store import Item, Store
from tests.fixtures.memory_calendar import ORIGIN, MemoryCalendar, MemoryServer

COL = "/cal/"


def d(uid: str, h: str) -> Desired:
    return Desired(uid, safe_name(uid), f"body {uid} {h}".encode(), h)


def test_empty_calendar_gets_creates_at_safe_names():
    p = plan({"a@x": d("a@x", "1")}, {}, {}, collection=COL)
    assert p.actions == [Create("a@x", "/cal/a.ics", b"body a@x 1", "1")]


def test_unchanged_calendar_needs_nothing():
    remote = {"/cal/a.ics": Remote("/cal/a.ics", '"e1"', True, "a@x", "1")}
    state = {"a@x": Item("a@x", "/cal/a.ics", '"e1"', "1")}
    assert plan({"a@x": d("a@x", "1")}, remote, state, collection=COL).actions == []


def test_changed_content_is_an_update_in_place_with_the_listed_etag():
    remote = {"/srv/named-by-server.ics": Remote("/srv/named-by-server.ics", '"e2"', True, "a@x", "1")}
    state = {"a@x": Item("a@x", "/srv/named-by-server.ics", '"e2"', "1")}
    p = plan({"a@x": d("a@x", "2")}, remote, state, collection=COL)
    assert p.actions == [Update("a@x", "/srv/named-by-server.ics", '"e2"', b"body a@x 2", "2")]


def test_foreign_items_are_never_planned():
    remote = {
        "/cal/a.ics": Remote("/cal/a.ics", '"f"', False),  # a foreign event at our name
        "/cal/b.ics": Remote("/cal/b.ics", '"g"', False, None, None),
    }
    p = plan({"a@x": d("a@x", "1")}, remote, {}, collection=COL)
    assert p.actions == [Create("a@x", "/cal/a-1.ics", b"body a@x 1", "1")]


def test_lost_state_adopts_matching_events_and_updates_others():
    remote = {
        "/cal/a.ics": Remote("/cal/a.ics", '"e1"', True, "a@x", "1"),
        "/cal/b.ics": Remote("/cal/b.ics", '"e2"', True, "b@x", "old"),
        "/cal/c.ics": Remote("/cal/c.ics", '"e3"', True, "c@x", "3"),
    }
    p = plan({"a@x": d("a@x", "1"), "b@x": d("b@x", "2")}, remote, {}, collection=COL)
    assert p.actions == [
        Adopt("a@x", "/cal/a.ics", '"e1"', "1"),
        Update("b@x", "/cal/b.ics", '"e2"', b"body b@x 2", "2"),
        Delete("c@x", "/cal/c.ics", '"e3"'),
    ]


def test_deleted_on_server_is_put_back_and_edited_is_restored():
    state = {"a@x": Item("a@x", "/cal/a.ics", '"e1"', "1"), "b@x": Item("b@x", "/cal/b.ics", '"e2"', "2")}
    remote = {"/cal/b.ics": Remote("/cal/b.ics", '"e9"', True, "b@x", "edited")}
    p = plan({"a@x": d("a@x", "1"), "b@x": d("b@x", "2")}, remote, state, collection=COL)
    assert p.actions == [
        Create("a@x", "/cal/a.ics", b"body a@x 1", "1", restore=True),
        Update("b@x", "/cal/b.ics", '"e9"', b"body b@x 2", "2", restore=True),
    ]


def test_duplicates_of_one_uid_keep_the_known_one():
    remote = {
        "/cal/a.ics": Remote("/cal/a.ics", '"e1"', True, "a@x", "1"),
        "/cal/zz.ics": Remote("/cal/zz.ics", '"e2"', True, "a@x", "1"),
    }
    state = {"a@x": Item("a@x", "/cal/zz.ics", '"e2"', "1")}
    p = plan({"a@x": d("a@x", "1")}, remote, state, collection=COL)
    assert p.actions == [Delete("a@x", "/cal/a.ics", '"e1"', duplicate=True)]


def test_forget_state_of_events_gone_everywhere():
    state = {"a@x": Item("a@x", "/cal/a.ics", '"e1"', "1")}
    assert plan({}, {}, state, collection=COL).actions == [Forget("a@x")]


def test_mass_delete_threshold():
    remote = {f"/cal/{n}.ics": Remote(f"/cal/{n}.ics", "e", True, f"{n}@x", "1") for n in range(8)}
    keep = {f"{n}@x": d(f"{n}@x", "1") for n in range(4)}
    assert not is_mass_delete(plan(keep, remote, {}, collection=COL), 8)  # half is not more than half
    assert is_mass_delete(plan(dict(itertools.islice(keep.items(), 3)), remote, {}, collection=COL), 8)
    small = {k: v for k, v in remote.items() if k in ("/cal/0.ics", "/cal/1.ics", "/cal/2.ics")}
    assert not is_mass_delete(plan({}, small, {}, collection=COL), 3)  # three or fewer is allowed


def test_safe_names_stay_inside_the_collection():
    for uid in ("../../etc@x", "a/b@x", "%2e%2e@x", "line\nbreak@x", "äö@x", "@x", "UPPER@x"):
        name = safe_name(uid)
        assert "/" not in name
        assert ".." not in name
        assert name.endswith(".ics")
        assert name[:-4].replace("-", "").isalnum()
        assert name == name.lower()


# ------------------------------------------------------------------- state machine

SESSIONS = [f"s{n}@x" for n in range(6)]
PASSWORD = "memory-pw-2718"
TARGET = {"kind": "caldav", "url": f"{ORIGIN}/mentor/", "username": "mentor",
          "password_env": "PW_MENTOR", "calendar": "Klash"}
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def event_body(uid: str, summary: str, sequence: int, *, ours: bool = True) -> bytes:
    marker = f"X-KLASH-SYNC:{session_of(uid)}\r\n" if ours else ""
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Klash//Test//FI\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261008T070000Z\r\n"
            f"DTEND:20261008T080000Z\r\nSUMMARY:{summary}\r\nSEQUENCE:{sequence}\r\n{marker}"
            "END:VEVENT\r\nEND:VCALENDAR\r\n").encode()


@functools.lru_cache(maxsize=4096)
def seen(body: bytes) -> Seen:
    """What the sync makes of a stored object; cached, as the machine asks again and again."""
    return inspect(body, "x")


def desired_event(uid: str, version: str, sequence: int) -> Desired:
    body = event_body(uid, version, sequence)
    seen = inspect(body, "x")
    assert seen.ours
    assert seen.hash
    assert seen.core
    return Desired(uid, safe_name(uid), body, seen.hash, sequence, seen.core)


class SyncMachine(RuleBasedStateMachine):
    """Any edits and foreign changes, then a sync, converge: the real sync of one calendar
    (``Syncer.sync_one``: list, fetch, plan, apply with preconditions, record in the
    SQLite store) against the in-memory calendar that passes the CalDAV contract suite."""

    def __init__(self) -> None:
        super().__init__()
        self.desired: dict[str, str] = {}  # uid -> the version (its SUMMARY)
        self.server = MemoryServer()
        self.foreign_snapshot: dict[str, tuple[str, bytes] | None] = {}
        self.edits = itertools.count()
        self.now = T0
        # Hundreds of SQLite stores: on tmpfs where there is one, so that syncing to disk
        # does not make the machine slow; the store's behaviour is the same.
        shm = Path("/dev/shm")
        self.tmp = Path(tempfile.mkdtemp(prefix="klash-machine-", dir=shm if shm.is_dir() else None))
        self.settings = Settings(state_dir=self.tmp, embedded_caldav=False,
                                 _env_file=None)  # type: ignore[call-arg]
        self._open_store()
        probe = MemoryCalendar(self.server, Endpoint(TARGET["url"], "mentor", PASSWORD, "Klash"))
        self.col = urlsplit(probe.open()).path  # the mentor's calendar exists before the first sync

    def _open_store(self) -> None:
        self.store = Store(self.tmp / "state.sqlite3")
        self.syncer = Syncer(
            self.settings, self.store, environ={"PW_MENTOR": PASSWORD}, clock=lambda: self.now,
            calendar_factory=lambda e, collection_url, connections, readonly: MemoryCalendar(
                self.server, e, collection_url=collection_url, readonly=readonly))

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _resources(self, ours: bool) -> list[str]:
        items = self.server.collections[self.col]
        return sorted(h for h, (_, body) in items.items() if seen(body).ours == ours)

    # programme edits
    @rule(uid=st.sampled_from(SESSIONS), version=st.integers(0, 3))
    def set_session(self, uid, version):
        self.desired[uid] = f"{uid}:{version}"

    @rule(uid=st.sampled_from(SESSIONS))
    def remove_session(self, uid):
        self.desired.pop(uid, None)

    # foreign changes on the server
    @rule(n=st.integers(0, 5), at_our_name=st.booleans())
    def foreign_adds(self, n, at_our_name):
        href = f"{self.col}s{n}.ics" if at_our_name else f"{self.col}mine-{n}.ics"
        if self.server.get(href) is None:
            self.server.put(href, event_body(f"mine-{n}@mentor.example", "Oma", 0, ours=False))
            self.foreign_snapshot[href] = self.server.get(href)

    @rule(n=st.integers(0, 20))
    def foreign_edits_foreign(self, n):
        hrefs = self._resources(ours=False)
        if hrefs:
            href = hrefs[n % len(hrefs)]
            self.server.put(href, event_body(f"{href}@mentor.example", f"Oma {next(self.edits)}", 0,
                                             ours=False))
            self.foreign_snapshot[href] = self.server.get(href)

    @rule(n=st.integers(0, 20))
    def someone_deletes_ours(self, n):
        hrefs = self._resources(ours=True)
        if hrefs:
            self.server.remove(hrefs[n % len(hrefs)])

    @rule(n=st.integers(0, 20))
    def someone_edits_ours(self, n):
        hrefs = self._resources(ours=True)
        if hrefs:
            href = hrefs[n % len(hrefs)]
            copy = seen(self.server.collection_of(href)[href][1])
            assert copy.uid is not None
            assert copy.sequence is not None
            self.server.put(href, event_body(copy.uid, "edited", copy.sequence))

    @rule()
    def state_lost(self):
        self.store.close()
        for path in self.tmp.glob("state.sqlite3*"):
            path.unlink()
        self._open_store()

    @rule()
    def sync(self):
        # As `Syncer.run` does with ``republish``: when the server held a SEQUENCE at or
        # above ours, the store was raised; publish again and repeat, at most twice.
        self.now += timedelta(minutes=1)
        for _round in range(3):
            revised = self.store.revise({session_of(u): v for u, v in self.desired.items()}, self.now)
            desired = {u: desired_event(u, v, revised.revisions[session_of(u)].sequence)
                       for u, v in self.desired.items()}
            result = self.syncer.sync_one(Job("memory", "mentor", TARGET, desired), "x",
                                          allow_mass_delete=True)
            assert result.ok, result.error
            if not result.raised:
                break
        else:
            raise AssertionError("still above our SEQUENCE after republishing twice")
        self._check_converged()

    def _check_converged(self) -> None:
        ours = {}
        for _href, (_, body) in self.server.collections[self.col].items():
            copy = seen(body)
            if copy.ours:
                assert copy.uid not in ours, "no duplicate events after a sync"
                ours[copy.uid] = re.search(rb"^SUMMARY:(.*)\r$", body, re.M).group(1).decode()
        assert ours == self.desired

    @invariant()
    def foreign_untouched(self):
        for href, value in self.foreign_snapshot.items():
            assert self.server.get(href) == value

    @invariant()
    def state_points_at_real_resources_after_sync(self):
        for item in self.store.items("memory").values():
            assert item.href.startswith(self.col)


TestSyncMachine = SyncMachine.TestCase
TestSyncMachine.settings = hsettings(max_examples=300, stateful_step_count=40, deadline=None)
