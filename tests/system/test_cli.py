"""The command line as a user runs it: export to stdout and files, serve on a free port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

from tests.fixtures.common import ROOT, fetch, run_cli
from tests.fixtures.parsers import read_icaljs


def test_export_whole_programme_to_stdout_is_deterministic(tmp_path):
    """Once the service has recorded the programme's revisions, every export is the same bytes.

    `export` to standard output changes nothing, so before any writer ran there are no
    recorded revisions to render from; a writer (here `export --all`) records them.
    """
    env = {"KLASH_STATE_DIR": str(tmp_path / "state")}
    assert run_cli("export", "--all", str(tmp_path / "site"), env=env).code == 0
    first = run_cli("export", env=env)
    second = run_cli("export", env=env)
    assert first.code == 0, first.err
    assert first.raw == second.raw
    assert first.raw == (tmp_path / "site" / "feeds" / "programme.ics").read_bytes()
    assert len(read_icaljs(first.raw)) == 5


def test_export_mentor_and_municipality_to_file(tmp_path):
    env = {"KLASH_STATE_DIR": str(tmp_path / "state")}
    out = tmp_path / "milja.ics"
    result = run_cli("export", "--mentor", "milja-kopsi", "-o", str(out), env=env)
    assert result.code == 0, result.err
    assert list(read_icaljs(out.read_bytes())) == ["joensuu-2019-10-01@klash.kuntaliitto.fi"]
    vantaa = run_cli("export", "--municipality", "vantaa", env=env)
    assert sorted(read_icaljs(vantaa.raw)) == [
        "vantaa-2019-10-08@klash.kuntaliitto.fi",
        "yhteinen-2019-10-15@klash.kuntaliitto.fi",
        "yhteinen-2019-10-22@klash.kuntaliitto.fi",
    ]


def test_export_unknown_mentor_names_the_known_ones(tmp_path):
    result = run_cli("export", "--mentor", "milja", env={"KLASH_STATE_DIR": str(tmp_path)})
    assert result.code == 2
    assert "no mentor 'milja'" in result.err
    assert "milja-kopsi" in result.err
    assert "Traceback" not in result.err


def test_serve_subprocess_answers_on_a_free_port(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    env.update(KLASH_STATE_DIR=str(tmp_path / "state"), KLASH_PORT="0")
    proc = subprocess.Popen([sys.executable, "-m", "klash_sync", "serve"], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            m = re.search(r"serving feeds on (http://\S+)", line)
            url = m.group(1) if m else None
        assert url, "serve did not report its address"
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # a full pipe would block it
        r = fetch(url, "/feeds/mentors/ulla-nord.ics")
        assert r.status == 200
        assert list(read_icaljs(r.body)) == ["vantaa-2019-10-08@klash.kuntaliitto.fi"]
        page = fetch(url, "/").body.decode()
        assert f"{url}/feeds/programme.ics" in page
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0  # it exits (how fast is not this test's business)


def test_sync_in_a_terminal_shows_progress_and_a_summary_table(tmp_path):
    """In a terminal: a line per calendar as it finishes, then a table; piped: plain lines."""
    import pty

    env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    env.update(KLASH_STATE_DIR=str(tmp_path / "state"))
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "klash_sync", "sync"], cwd=ROOT, env=env,
                            stdout=follower, stderr=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed when the process ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    screen = b"".join(chunks).decode()
    assert screen.count("ok      ") == 8
    assert "calendars   failed  created  updated  deleted  requests" in screen
    piped = run_cli("sync", env={"KLASH_STATE_DIR": str(tmp_path / "state")})
    assert "summary: 8 calendars, 0 failed, 0 created" in piped.out
    assert "calendars   failed" not in piped.out


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path):
    """`klash-sync validate | head -0`: the command stops quietly when its reader has gone away
    (here before the first line, so that the write surely fails)."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KLASH_")},
           "KLASH_STATE_DIR": str(tmp_path / "state")}
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "klash_sync", "validate"], cwd=ROOT, env=env,
                              stdout=write_end, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(write_end)
    err = proc.stderr.decode()
    assert proc.returncode == 141, err
    assert "Traceback" not in err, err
