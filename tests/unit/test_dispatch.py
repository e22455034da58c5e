"""Which calendars the daemon starts next: pure bookkeeping, tested on its own.

The daemon tests (test_targeted.py) check the same promises end to end against real
servers; these pin down the order and the limits exactly.
"""

from __future__ import annotations

from klash_sync.deliver.caldav.plan import Desired
from klash_sync.deliver.caldav.sync import Job
from klash_sync.service.dispatch import CalendarDue as Due


def job(key: str, host: str, body: bytes = b"v1", *, leaving: bool = False,
        successors: tuple[str, ...] = ()) -> Job:
    desired = {} if leaving else {f"{key}@x": Desired(f"{key}@x", f"{key}.ics", body, "h", 0, "")}
    return Job(key, key.split(":")[0], {"kind": "caldav", "url": f"https://{host}/dav/"}, desired,
               leaving=leaving, successors=successors)


def test_a_reload_marks_only_changed_calendars_and_they_go_first():
    due = Due(per_host=8)
    jobs = [job(f"m{i}:c", "a.example") for i in range(5)]
    assert due.refresh(jobs, all_due=True) == {j.key for j in jobs}
    assert due.take({}, 10, lambda k: True) == [j.key for j in jobs]
    # Nothing changed: a reload makes nothing due.
    assert due.refresh(jobs, all_due=False) == set()
    assert due.take({}, 10, lambda k: True) == []
    # The periodic pass makes all due; an edit of m4 during it puts m4 first.
    due.refresh(jobs, all_due=True)
    edited = [*jobs[:4], job("m4:c", "a.example", b"v2")]
    assert due.refresh(edited, all_due=False) == {"m4:c"}
    assert due.take({}, 2, lambda k: True) == ["m4:c", "m0:c"]


def test_a_running_calendar_whose_content_changes_runs_again_after_it():
    due = Due(per_host=8)
    due.refresh([job("m0:c", "a.example")], all_due=True)
    assert due.take({}, 4, lambda k: True) == ["m0:c"]
    running = {"m0:c": object()}
    due.refresh([job("m0:c", "a.example", b"v2")], all_due=False)
    assert due.take(running, 4, lambda k: True) == []  # not twice at once
    assert due.take({}, 4, lambda k: True) == ["m0:c"]  # as soon as it has ended
    assert due.jobs["m0:c"].desired["m0:c@x"].body == b"v2"


def test_per_host_limit_backoff_and_cleanup_order():
    due = Due(per_host=3)
    jobs = [job(f"a{i}:c", "a.example") for i in range(6)] + [job(f"b{i}:c", "b.example:8443")
                                                            for i in range(2)]
    due.refresh(jobs, all_due=True)
    assert due.take({}, 8, lambda k: True) == ["a0:c", "a1:c", "a2:c", "b0:c", "b1:c"]  # 3 a host
    assert due.take({}, 8, lambda k: True) == ["a3:c", "a4:c", "a5:c"]
    due.refresh(jobs, all_due=True)  # the periodic pass
    first = due.take({}, 8, lambda k: k != "a0:c")  # a0 is backing off
    assert first == ["a1:c", "a2:c", "a3:c", "b0:c", "b1:c"]
    # A leaving calendar waits while the mentor's new calendar is still due.
    due = Due(per_host=8)
    due.refresh([job("m0:new", "a.example"), job("m0:old", "a.example", leaving=True,
                                                  successors=("m0:new",))], all_due=True)
    assert due.take({}, 1, lambda k: True) == ["m0:new"]
    assert due.take({"m0:new": object()}, 4, lambda k: True) == []
    assert due.take({}, 4, lambda k: True) == ["m0:old"]
