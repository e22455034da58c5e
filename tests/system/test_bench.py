"""The benchmark runs end to end at a tiny size, so it cannot rot (CI times nothing)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.fixtures.common import ROOT


@pytest.mark.parametrize("server", ["radicale", "xandikos"])
def test_benchmark_runs_at_a_tiny_size(tmp_path, server):
    out = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--server", server, "--sessions", "12", "--mentors", "3",
         "--feed-sessions", "60", "--feed-mentors", "6", "--requests", "100", "--load-seconds", "1",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = out.read_text()
    for row in ("a. first sync", "b. no-op sync", "c. 1% rescheduled", "d. floor", "vdirsyncer first sync",
                "vdirsyncer no-op", "vdirsyncer 1%", "render all feeds", "conditional GET",
                "Peak memory", "first sync ≤ 1.15 × floor"):
        assert row in report, row
    # The no-op sync is one request per calendar, here as in the real run.
    no_op = next(line for line in report.splitlines() if line.startswith("| b. no-op sync"))
    assert no_op.rstrip(" |").endswith("| 3")


def test_far_servers_phase_runs_at_a_tiny_size(tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text("# results\n\nkept text\n")
    done = subprocess.run(
        [sys.executable, "-m", "bench.far", "--mentors", "6", "--delays", "0.02", "--hosts", "2",
         "--sweep", "2", "--interval", "5", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = out.read_text()
    assert "kept text" in report
    assert "## Far servers" in report
    row = next(line for line in report.splitlines() if line.startswith("| 6 | 20 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "4.00"  # first sync from the principal: PROPFIND, MKCALENDAR, two PUTs
    assert cells[7] == "1.00"  # no-op: one request per calendar
    assert cells[8].endswith("/ 0.000")  # a warm no-op pass opens no connection


def test_wrong_passwords_phase_runs_at_a_tiny_size(tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text("# results\n\nkept text\n")
    done = subprocess.run(
        [sys.executable, "-m", "bench.logins", "--clients", "3", "--rate", "4", "--seconds", "2",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = out.read_text()
    assert "kept text" in report
    assert "## Wrong passwords" in report
    for row in ("| feed median, ms |", "| /healthz worst, ms |"):
        assert row in report, row
    answers = next(line for line in report.splitlines() if line.startswith("Answers to the attackers"))
    assert '"500"' not in answers
