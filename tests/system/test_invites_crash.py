"""kill -9 at random moments during batches of invitations, then converge.

A real `klash-sync invites --send` process sends a batch to a real SMTP server (which
records the order in which it accepted messages) and is killed with SIGKILL ten times
at random moments, while the programme keeps changing. Afterwards one run without a
kill must leave every (mentor, session) with its latest version, and no mailbox may
ever have received an older SEQUENCE of a session after a newer one.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar

from tests.fixtures.common import ROOT, run_cli
from tests.fixtures.invite_helpers import ADDRESSES, header, session, timed

Y = datetime.now(UTC).year + 1
SESSIONS = 12
MENTORS = {"milja-kopsi": ADDRESSES["milja-kopsi"], "ulla-nord": ADDRESSES["ulla-nord"]}


def programme(version: int) -> str:
    parts = []
    for i in range(SESSIONS):
        hour = 8 + (i + version) % 9  # every version moves most sessions
        parts.append(session(f"s{i}", timed(f"{Y}-{1 + i % 12:02d}-{10 + i:02d}", f"{hour:02d}:00",
                                            f"{hour:02d}:45"), list(MENTORS)))
    return header() + "".join(parts)


def parse(raw: bytes) -> tuple[str, int, str]:
    import email
    from email.policy import default

    msg = email.message_from_bytes(raw, policy=default)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    event = Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")[0]
    start = event.decoded("DTSTART").astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
    return str(event["UID"]).split("@")[0], int(event["SEQUENCE"]), start


def test_kill_9_at_random_moments_then_converge(tmp_path, smtp):
    smtp.handler.delay = 0.03  # a relay that takes its time: kills land mid-batch
    path, state = tmp_path / "programme.toml", tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    env.update(smtp.env(), KLASH_PROGRAMME=str(path), KLASH_STATE_DIR=str(state))
    rng = random.Random(20261130)
    version = 0
    killed_mid_batch = 0
    for attempt in range(10):
        if attempt % 2 == 0:
            version += 1
            path.write_text(programme(version), encoding="utf-8")
        before = len(smtp.handler.messages())
        proc = subprocess.Popen([sys.executable, "-m", "klash_sync", "invites", "--send"], cwd=ROOT,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if attempt % 2 == 0:  # at a random moment, also before any message (start-up, planning)
            time.sleep(rng.uniform(0.4, 2.5))
        else:  # a random moment once the batch is under way: the start-up's length under load
            deadline = time.monotonic() + 30  # does not decide whether the kill lands mid-batch
            while len(smtp.handler.messages()) == before and time.monotonic() < deadline \
                    and proc.poll() is None:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=30)
        if code == -signal.SIGKILL and len(smtp.handler.messages()) > before:
            killed_mid_batch += 1
    assert killed_mid_batch >= 1, "no kill landed while messages were being sent"

    done = run_cli("invites", "--send", env=env, timeout=120)
    assert done.code == 0, done.out + done.err
    again = run_cli("invites", "--send", env=env, timeout=120)
    assert "summary: 0 sent" in again.out  # converged: nothing left to send

    received = [(m.recipients[0], *parse(m.raw)) for m in smtp.handler.messages()]
    history: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for to, uid, sequence, start in received:
        history.setdefault((to, uid), []).append((sequence, start))
    final = {f"s{i}": f"{Y}-{1 + i % 12:02d}-{10 + i:02d}T{8 + (i + version) % 9:02d}:00" for i in
             range(SESSIONS)}
    for address in MENTORS.values():
        for uid, local in final.items():
            seen = history[(address, uid)]
            sequences = [s for s, _ in seen]
            assert sequences == sorted(sequences), f"{address} got an older {uid} after a newer one"
            last_sequence, last_start = seen[-1]
            assert last_sequence == max(sequences)
            expected = datetime.fromisoformat(local).replace(
                tzinfo=ZoneInfo("Europe/Helsinki")).astimezone(UTC)
            assert last_start == expected.strftime("%Y-%m-%dT%H:%MZ"), f"{address} {uid} not latest"
            # a resend after a kill repeats the same version, never a different one with one number
            by_sequence: dict[int, set[str]] = {}
            for sequence, start in seen:
                by_sequence.setdefault(sequence, set()).add(start)
            assert all(len(starts) == 1 for starts in by_sequence.values())
