"""The scheduler over channels, on a fake clock: debounce, backoff, isolation, order, status.

The channel here is a small in-memory one (each unit "delivers" a version string and
remembers the order of its runs), driven through the real scheduler, queue, backoff,
status and health. Runs happen on the scheduler's real worker threads; ``settle``
waits for them (bounded), never for time: time is the ``FakeClock``'s.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

from klash_sync.clock import FakeClock
from klash_sync.deliver.base import Ask, Outcome, Unit
from klash_sync.service.health import health
from klash_sync.service.metrics import Metrics
from klash_sync.service.scheduler import Scheduler
from klash_sync.status import Live

SNAPSHOT = object()  # the channels below read nothing from it


class Memory:
    """A channel whose recipients hold the last version delivered to them."""

    section = "letters"
    unit = None
    levels = ()
    per_group = 8
    reports = False

    def __init__(self, name: str = "memory", *, recipients=("a", "b", "c"), workers: int = 4,
                 quiet: float = 0.0) -> None:
        self.name = name
        self.workers = workers
        self.quiet = quiet
        self.wanted = dict.fromkeys(recipients, "v1")
        self.held: dict[str, str] = {}
        self.refusing: set[str] = set()
        self.raising: set[str] = set()
        self.runs: list[str] = []
        self.lock = threading.Lock()
        self.gate: threading.Event | None = None  # when set up, runs wait for it (bounded)

    def items(self, snapshot):
        return list(self.wanted.items())

    def view(self, item):
        recipient, version = item
        return Unit(recipient, recipient, version)

    def run(self, item, snapshot, ask):
        recipient, version = item
        if self.gate is not None:
            self.gate.wait(10)
        with self.lock:
            self.runs.append(recipient)
        if recipient in self.raising:
            raise RuntimeError("the adapter broke")
        if recipient in self.refusing:
            return Outcome(False, f"550 {recipient} refused", failed=(recipient,), lines=["refused"])
        self.held[recipient] = version
        return Outcome(True, counts={"sent": 1}, actions={"send": 1}, lines=[f"ok {recipient}"])

    def retry_due(self):
        return set()

    def status(self, snapshot):
        return None

    def close(self, finished):
        pass

    def taken(self) -> list[str]:
        with self.lock:
            runs, self.runs = self.runs, []
        return runs


def rig(*channels):
    clock = FakeClock(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    live = Live()
    scheduler = Scheduler(list(channels), live, Metrics(), clock, retry_max=120)
    return scheduler, clock, live


def settle(scheduler: Scheduler, limit: float = 10) -> None:
    """Tick until nothing runs and nothing is due; waits on the worker threads, bounded."""
    deadline = time.monotonic() + limit
    scheduler.tick(SNAPSHOT)
    while not scheduler.idle():
        assert time.monotonic() < deadline, "runs did not finish"
        time.sleep(0.005)
        scheduler.tick(SNAPSHOT)


def test_a_failing_recipient_backs_off_while_the_others_proceed():
    channel = Memory()
    channel.refusing = {"b"}
    scheduler, clock, _live = rig(channel)
    scheduler.refresh(SNAPSHOT, all_due=False)
    settle(scheduler)
    assert sorted(channel.taken()) == ["a", "b", "c"]
    assert channel.held == {"a": "v1", "c": "v1"}
    assert scheduler.lane("memory").backoff.failures("b") == 1
    # An edit for everyone: a and c get it at once; b waits out its backoff.
    channel.wanted = dict.fromkeys(channel.wanted, "v2")
    scheduler.refresh(SNAPSHOT, all_due=False)
    settle(scheduler)
    assert sorted(channel.taken()) == ["a", "b", "c"], "a new version is a new reason to try b"
    assert scheduler.lane("memory").backoff.failures("b") == 2
    clock.advance(4.9)  # below the smallest jittered second delay (5 s)
    settle(scheduler)
    assert channel.taken() == []
    clock.advance(5.2)
    settle(scheduler)
    assert channel.taken() == ["b"], "only the failing recipient is retried"
    channel.refusing.clear()
    clock.advance(20.1)
    settle(scheduler)
    assert channel.taken() == ["b"]
    assert channel.held == {"a": "v2", "b": "v2", "c": "v2"}
    assert scheduler.lane("memory").backoff.failures("b") == 0
    clock.advance(600)
    settle(scheduler)
    assert channel.taken() == [], "nothing more once all hold what they should"


def test_an_exception_is_that_recipients_failure_only():
    channel = Memory()
    channel.raising = {"a"}
    scheduler, _clock, live = rig(channel)
    scheduler.refresh(SNAPSHOT, all_due=False)
    settle(scheduler)
    assert channel.held == {"b": "v1", "c": "v1"}
    records = {r.mentor: r for r in live.records("memory")}
    assert not records["a"].ok
    assert records["a"].error == "RuntimeError"
    assert records["b"].ok


def test_a_changed_recipient_goes_first_then_the_periodic_pass_visits_everyone():
    channel = Memory(recipients=("a", "b", "c", "d"), workers=1)
    scheduler, _clock, _live = rig(channel)
    scheduler.refresh(SNAPSHOT, all_due=False)
    settle(scheduler)
    assert channel.taken() == ["a", "b", "c", "d"]
    scheduler.refresh(SNAPSHOT, all_due=False)
    settle(scheduler)
    assert channel.taken() == [], "a reload that changes nothing runs nothing"
    # The periodic pass starts (one worker, held at its first run); d is edited meanwhile.
    channel.gate = threading.Event()
    scheduler.refresh(SNAPSHOT, all_due=True)
    scheduler.tick(SNAPSHOT)
    channel.wanted["d"] = "v2"
    scheduler.refresh(SNAPSHOT, all_due=False)
    channel.gate.set()
    settle(scheduler)
    assert channel.taken() == ["a", "d", "b", "c"], "the edited one right after the running one"
    assert channel.held["d"] == "v2"


def test_a_quiet_period_turns_a_burst_of_edits_into_one_delivery():
    channel = Memory(recipients=("a",), quiet=120)
    scheduler, clock, _live = rig(channel)
    scheduler.refresh(SNAPSHOT, all_due=False)
    clock.advance(119)
    settle(scheduler)
    assert channel.taken() == [], "not before the programme has been quiet for 120 s"
    for version in ("v2", "v3", "v4"):  # three edits, 30 s apart
        channel.wanted["a"] = version
        scheduler.refresh(SNAPSHOT, all_due=False)
        clock.advance(30)
        settle(scheduler)
    assert channel.taken() == []
    clock.advance(90)
    settle(scheduler)
    assert channel.taken() == ["a"]
    assert channel.held == {"a": "v4"}


def test_an_operator_request_runs_now_past_backoff_and_quiet_period_and_is_answered():
    channel = Memory(quiet=600)
    channel.refusing = {"b"}
    scheduler, _clock, _live = rig(channel)
    scheduler.refresh(SNAPSHOT, all_due=False)
    answers: list[tuple[str, bool, list[str]]] = []
    scheduler.ask("memory", {"a": None, "b": ("b", "v9")},
                  Ask(False, done=lambda key, outcome: answers.append((key, outcome.ok, outcome.lines))))
    settle(scheduler)
    assert sorted(channel.taken()) == ["a", "b"], "c waits for the quiet period"
    assert sorted(answers) == [("a", True, ["ok a"]), ("b", False, ["refused"])]
    assert channel.held == {"a": "v1"}


def test_status_records_per_channel_and_health_judges_them_alike():
    letters, parcels = Memory("letters"), Memory("parcels", recipients=("a", "z"))
    parcels.section = "parcels"
    letters.refusing = {"b"}
    scheduler, clock, live = rig(letters, parcels)
    scheduler.refresh(SNAPSHOT, all_due=False)
    settle(scheduler)
    assert [(r.mentor, r.ok) for r in live.records("letters")] == [("a", True), ("b", False), ("c", True)]
    assert [(r.mentor, r.ok) for r in live.records("parcels")] == [("a", True), ("z", True)]
    first = {r.mentor: r for r in live.records("letters")}["b"]
    assert first.failing_since == clock.now()
    assert first.error == "550 b refused"
    assert first.last_success is None
    assert {r.mentor: r for r in live.records("letters")}["a"].count("sent") == 1
    clock.advance(61)
    settle(scheduler)  # b is retried, and fails again: still failing since the first time
    again = {r.mentor: r for r in live.records("letters")}["b"]
    assert again.last_attempt == clock.now()
    assert again.failing_since == first.failing_since
    code, body = health(live, now=clock.now(), unhealthy_after=60, programme_path="p.toml")
    assert code == 503
    parsed = json.loads(body)
    # b failing for over a minute is b's problem, shown as a warning: a is fine
    assert [(p["part"], p["reason"]) for p in parsed["problems"]] == [("programme", "no programme loaded")]
    since = first.failing_since.isoformat(timespec="seconds")
    assert parsed["warnings"] == [
        {"part": "letters", "since": since, "reason": "550 b refused", "mentor": "b"}]
    assert [x["mentor"] for x in parsed["parcels"]] == ["a", "z"]
    assert parsed["letters"][1]["error"] == "550 b refused"
