"""The pure planner: unit cases, and a Hypothesis state machine over edits and foreign changes."""

from __future__ import annotations

import itertools

from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

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
from klash_sync.state.store import Item

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


class SyncMachine(RuleBasedStateMachine):
    """A model server and the planner: any edits and foreign changes, then a sync, converge."""

    def __init__(self) -> None:
        super().__init__()
        self.desired: dict[str, str] = {}  # uid -> content hash
        # href -> (etag, ours, uid, hash)
        self.server: dict[str, tuple[str, bool, str | None, str | None]] = {}
        self.state: dict[str, Item] = {}
        self.foreign_snapshot: dict[str, tuple] = {}
        self.etags = itertools.count()

    def _etag(self) -> str:
        return f'"{next(self.etags)}"'

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
        href = f"{COL}s{n}.ics" if at_our_name else f"{COL}mine-{n}.ics"
        if href not in self.server:
            self.server[href] = (self._etag(), False, None, None)
            self.foreign_snapshot[href] = self.server[href]

    @rule(n=st.integers(0, 20))
    def foreign_edits_foreign(self, n):
        hrefs = sorted(h for h, v in self.server.items() if not v[1])
        if hrefs:
            href = hrefs[n % len(hrefs)]
            self.server[href] = (self._etag(), False, None, None)
            self.foreign_snapshot[href] = self.server[href]

    @rule(n=st.integers(0, 20))
    def someone_deletes_ours(self, n):
        hrefs = sorted(h for h, v in self.server.items() if v[1])
        if hrefs:
            del self.server[hrefs[n % len(hrefs)]]

    @rule(n=st.integers(0, 20))
    def someone_edits_ours(self, n):
        hrefs = sorted(h for h, v in self.server.items() if v[1])
        if hrefs:
            href = hrefs[n % len(hrefs)]
            _, _, uid, _ = self.server[href]
            self.server[href] = (self._etag(), True, uid, "edited")

    @rule()
    def state_lost(self):
        self.state = {}

    @rule()
    def sync(self):
        remote = {h: Remote(h, e, ours, uid if ours else None, hsh)
                  for h, (e, ours, uid, hsh) in self.server.items()}
        desired = {uid: d(uid, h) for uid, h in self.desired.items()}
        for action in plan(desired, remote, self.state, collection=COL).actions:
            self._apply(action)
        self._check_converged()

    def _apply(self, action) -> None:
        if isinstance(action, Create):
            assert action.href not in self.server, "a create must never overwrite anything"
            assert action.href.startswith(COL)
            assert "/" not in action.href[len(COL):]
            etag = self._etag()
            self.server[action.href] = (etag, True, action.uid, action.hash)
            self.state[action.uid] = Item(action.uid, action.href, etag, action.hash)
        elif isinstance(action, Update):
            current = self.server[action.href]
            assert current[1], "never update what is not ours"
            assert current[0] == action.etag, "If-Match must carry the current ETag"
            etag = self._etag()
            self.server[action.href] = (etag, True, action.uid, action.hash)
            self.state[action.uid] = Item(action.uid, action.href, etag, action.hash)
        elif isinstance(action, Delete):
            current = self.server[action.href]
            assert current[1], "never delete what is not ours"
            assert current[0] == action.etag
            del self.server[action.href]
            if not action.duplicate:
                self.state.pop(action.uid, None)
        elif isinstance(action, Adopt):
            self.state[action.uid] = Item(action.uid, action.href, action.etag, action.hash)
        elif isinstance(action, Forget):
            self.state.pop(action.uid, None)

    def _check_converged(self) -> None:
        ours = {}
        for _href, (_, is_ours, uid, hsh) in self.server.items():
            if is_ours:
                assert uid not in ours, "no duplicate events after a sync"
                ours[uid] = hsh
        assert ours == self.desired

    @invariant()
    def foreign_untouched(self):
        for href, value in self.foreign_snapshot.items():
            assert self.server.get(href) == value

    @invariant()
    def state_points_at_real_resources_after_sync(self):
        for item in self.state.values():
            assert item.href.startswith(COL)


TestSyncMachine = SyncMachine.TestCase
TestSyncMachine.settings = hsettings(max_examples=300, stateful_step_count=40, deadline=None)
