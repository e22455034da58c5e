"""The delivery base: the one backoff (formula and persistence), the guard, one_line, origin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from klash_sync.clock import FakeClock
from klash_sync.deliver.base import MASS_CHANGE, Guard, Report, Result, one_line, origin
from klash_sync.deliver.caldav.plan import Desired, Remote, is_mass_delete, plan, safe_name
from klash_sync.deliver.invite.items import CANCEL, REQUEST, Invitation, InvitePlan, Sent
from klash_sync.deliver.invite.plan import _guard
from klash_sync.logs import register_secret
from klash_sync.state.backoff import Backoff, delay
from klash_sync.state.store import Store

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


# ------------------------------------------------------------------ backoff


def test_backoff_formula_doubles_from_base_up_to_the_cap():
    assert [delay(n, base=5, cap=60, rand=lambda: 1.0) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert [delay(n, base=30, cap=900, rand=lambda: 1.0) for n in (1, 2, 3)] == [30, 60, 120]


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.999])
def test_backoff_equal_jitter_stays_between_half_and_full(jitter):
    pause = delay(3, base=8, cap=1000, rand=lambda: jitter)
    assert 16 <= pause <= 32
    assert pause == 32 * (0.5 + jitter / 2)


def test_backoff_api_per_recipient_and_reset(tmp_path):
    clock = FakeClock(NOW)
    store = Store(tmp_path / "state.db")
    try:
        b = Backoff(clock, store, base=10, cap=100, rand=lambda: 1.0)
        assert b.failed("down") == 10
        assert not b.ready("down")
        assert b.ready("healthy"), "one failing recipient never delays another"
        clock.advance(9.9)
        assert not b.ready("down")
        clock.advance(0.2)
        assert b.ready("down")
        assert b.failed("down") == 20
        assert b.failures("down") == 2
        b.succeeded("down")
        assert b.ready("down")
        assert b.failures("down") == 0
    finally:
        store.close()


def test_backoff_survives_a_restart_of_the_store(tmp_path):
    path = tmp_path / "state.db"
    clock = FakeClock(NOW)
    store = Store(path)
    b = Backoff(clock, store, channel="caldav", base=5, cap=900, rand=lambda: 1.0)
    for _ in range(3):
        b.failed("milja:caldav:abc")
    b.failed("ulla:embedded:def")
    b.succeeded("ulla:embedded:def")
    Backoff(clock, store, channel="invite", rand=lambda: 1.0).failed("milja")
    store.close()

    clock.advance(10)  # the daemon was down for ten seconds of the twenty-second pause
    store = Store(path)
    try:
        again = Backoff(clock, store, channel="caldav", base=5, cap=900, rand=lambda: 1.0)
        assert again.failures("milja:caldav:abc") == 3
        assert not again.ready("milja:caldav:abc"), "a restart does not forget a failing server"
        clock.advance(9.9)
        assert not again.ready("milja:caldav:abc")
        clock.advance(0.2)
        assert again.ready("milja:caldav:abc")
        assert again.failed("milja:caldav:abc") == 40, "the count goes on from where it was"
        assert again.failures("ulla:embedded:def") == 0, "a success is remembered too"
        assert again.failures("milja") == 0, "each channel has its own recipients"
        assert Backoff(clock, store, channel="invite").failures("milja") == 1
    finally:
        store.close()


def test_backoff_after_a_restart_never_waits_longer_than_the_cap(tmp_path):
    path = tmp_path / "state.db"
    store = Store(path)
    Backoff(FakeClock(NOW + timedelta(days=1)), store, cap=60, rand=lambda: 1.0).failed("x")
    store.close()
    clock = FakeClock(NOW)  # the wall clock went back a day
    store = Store(path)
    try:
        b = Backoff(clock, store, cap=60)
        assert not b.ready("x")
        clock.advance(60)
        assert b.ready("x")
    finally:
        store.close()


# -------------------------------------------------------------------- guard


def test_guard_more_than_three_and_more_than_half():
    assert not MASS_CHANGE.refuses(3, 3), "a small calendar may always be emptied"
    assert not MASS_CHANGE.refuses(4, 8), "half is not more than half"
    assert MASS_CHANGE.refuses(5, 8)
    assert MASS_CHANGE.refuses(4, 0), "nothing known as ours: four removals are still a mass change"
    assert Guard(minimum=0, share=0.0).refuses(1, 100)


def _desired(uid: str) -> Desired:
    return Desired(uid, safe_name(uid), b"body", "1")


def test_guard_for_caldav_deletes():
    remote = {f"/cal/{n}.ics": Remote(f"/cal/{n}.ics", "e", True, f"{n}@x", "1") for n in range(8)}
    keep4 = {f"{n}@x": _desired(f"{n}@x") for n in range(4)}
    keep3 = {f"{n}@x": _desired(f"{n}@x") for n in range(3)}
    assert not is_mass_delete(plan(keep4, remote, {}, collection="/cal/"), 8)
    assert is_mass_delete(plan(keep3, remote, {}, collection="/cal/"), 8)


def _sent(mentor: str, n: int) -> Sent:
    return Sent(mentor, f"s{n}", f"{mentor}@example.fi", 1, "h", REQUEST, b"VEVENT",
                NOW + timedelta(days=n + 1))


def _cancel(mentor: str, n: int) -> Invitation:
    return Invitation(mentor, mentor, f"{mentor}@example.fi", f"s{n}", CANCEL, 2, "c", b"VEVENT",
                      (), NOW + timedelta(days=n + 1), "removed")


@pytest.mark.parametrize(("cancels", "upcoming", "held"), [(4, 7, True), (4, 8, False), (3, 3, False)])
def test_guard_for_invitation_cancels(cancels, upcoming, held):
    sent = {(s.mentor, s.session): s for s in (_sent("milja", n) for n in range(upcoming))}
    wanted = {(i.mentor, i.session): i for i in (_cancel("milja", n) for n in range(cancels))}
    result = InvitePlan()
    _guard(result, wanted, sent, NOW)
    assert ("milja" in result.held) is held
    assert len(result.messages) == (0 if held else cancels)


# ------------------------------------------------------- one_line and origin


def test_one_line_folds_whitespace_masks_secrets_and_cuts():
    register_secret("hunter2-very-secret")
    text = one_line(ValueError("server said:\n  401\tno for hunter2-very-secret\r\n" + "x" * 500))
    assert "\n" not in text
    assert "\t" not in text
    assert "  " not in text
    assert text.startswith("server said: 401 no for ")
    assert "hunter2" not in text
    assert len(text) == 300
    assert one_line(b"550 \xff bad\n") == "550 \ufffd bad"
    assert len(one_line("y" * 500, limit=None)) == 500


@pytest.mark.parametrize(("url", "expected"), [
    ("https://Cal.Example.FI/dav/milja/", "https://cal.example.fi:443"),
    ("HTTP://cal.example.fi/x", "http://cal.example.fi:80"),
    ("http://127.0.0.1:5232/", "http://127.0.0.1:5232"),
    ("https://[::1]:8443/dav", "https://[::1]:8443"),
])
def test_origin_names_the_server(url, expected):
    assert origin(url) == expected


def test_report_is_ok_only_when_every_recipient_is():
    good, bad = Result("a", "milja", ok=True), Result("b", "ulla", error="down")
    report = Report([good, bad])
    assert not report.ok
    assert report.failed == [bad]
    assert Report([good]).ok
    assert Report([]).ok


def test_invitation_pass_reports_per_mentor_like_every_channel():
    from klash_sync.deliver.invite.channel import Delivery, InviteReport
    from klash_sync.deliver.invite.smtp import Outcome

    report = InviteReport(
        deliveries=[Delivery(_cancel("milja", 0), Outcome(True), 0.25),
                    Delivery(_cancel("milja", 1), Outcome(False, True, "421 busy"), 0.5),
                    Delivery(_cancel("ulla", 0), Outcome(True), 0.1),
                    Delivery(_cancel("ulla", 1), Outcome(False, True, "421 busy"), 0.0, tried=False)],
        held={"kai": [_cancel("kai", n) for n in range(4)]})
    lines = {r.mentor: r for r in report.by_recipient().results}
    assert (lines["milja"].ok, lines["milja"].sent, lines["milja"].not_sent) == (False, 1, 1)
    assert lines["milja"].error == "421 busy"
    assert lines["milja"].requests == 2
    assert lines["milja"].seconds == 0.75
    assert lines["ulla"].requests == 1, "a message not offered to a server known down is no request"
    assert (lines["kai"].ok, lines["kai"].held) == (False, 4)
    assert "holding 4 cancellations" in (lines["kai"].error or "")
    assert report.by_recipient().changed == 2
    assert not report.by_recipient().ok


def test_backoff_keeps_counting_in_memory_when_the_store_cannot_be_written(tmp_path, caplog):
    clock = FakeClock(NOW)
    store = Store(tmp_path / "state.db")
    try:
        b = Backoff(clock, store, base=5, cap=60, rand=lambda: 1.0)
        store.broken = "the state directory was removed"
        assert b.failed("x") == 5
        assert b.failed("x") == 10
        assert not b.ready("x")
        assert "backoff of caldav not saved: the state directory was removed" in caplog.text
    finally:
        store.broken = None
        store.close()
