"""Every command that writes does the same beside `klash-sync run` as alone: effect, output, exit code.

Real processes: the daemon on a free port with a temporary state directory, and the
command line as an operator runs it. Each command runs twice, in lockstep, on two copies
of one state directory: beside the daemon on the first (the command hands its work to the
daemon), alone on the second. The two runs must exit with the same code and print the same,
after normalising only what must differ: the passwords `accounts` makes, the seconds a
calendar took, the export's version name (its pages show when the programme was loaded),
the `handed over` note and the log lines (the daemon's, beside it), and the order in which
calendars finish (the order of completion, which differs from run to run even alone).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from klash_sync.service import control
from tests.fixtures.caldav_world import ENV
from tests.fixtures.common import HEADER, ROOT, SHIPPED, fetch, programme_text
from tests.fixtures.invite_helpers import ADDRESSES, header, session
from tests.fixtures.processes import Running, start_daemon, wait_for
from tests.fixtures.servers import start_radicale

PUBLIC = "https://klash.example.fi"
SECRET = "operator-commands-secret-0123456789"
HANDED_OVER = "klash-sync run holds the state directory; handed over to it, waiting for the result"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR)")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def normal(done: subprocess.CompletedProcess, *, unordered: bool = False) -> tuple[str, str]:
    out = re.sub(r"\d+\.\d\d s\)", "S s)", done.stdout)
    out = re.sub(r"(password  )\S+(   \(new)", r"\1PASSWORD\2", out)
    out = re.sub(r"\(-> [0-9a-f]{16}\)", "(-> VERSION)", out)
    err = re.sub(r"\(-> [0-9a-f]{16}\)", "(-> VERSION)", done.stderr)
    err = "\n".join(line for line in err.splitlines() if not LOG_LINE.match(line) and line != HANDED_OVER)
    if unordered:
        out = "\n".join(sorted(out.splitlines()))
    return out, err


def passwords(out: str) -> dict[str, str]:
    return dict(re.findall(r"user +(\S+)\n +password +(\S+)   \(new", out))


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@dataclass
class Twins:
    """Two copies of one state directory: ``beside`` runs the daemon, ``alone`` does not."""

    tmp: Path
    env: dict[str, str]
    daemon: Running | None = None
    ran: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def beside(self) -> Path:
        return self.tmp / "state"  # where start_daemon puts it

    @property
    def alone(self) -> Path:
        return self.tmp / "alone"

    def run(self, state: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess:
        full = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
        full.update(self.env, KLASH_STATE_DIR=str(state), **(env or {}))
        return subprocess.run([sys.executable, "-m", "klash_sync", *args], cwd=ROOT, env=full,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def split(self) -> None:
        """The alone copy starts as the daemon's state is now (before the daemon runs)."""
        shutil.copytree(self.beside, self.alone, symlinks=True)

    def start(self, **extra: str) -> Running:
        path = Path(self.env["KLASH_PROGRAMME"])
        own = {k: v for k, v in self.env.items() if k not in ("KLASH_PROGRAMME", "KLASH_REQUEST_TIMEOUT")}
        self.daemon = start_daemon(self.tmp, path, KLASH_SYNC_INTERVAL="3600", **own, **extra)
        return self.daemon

    def stop(self) -> None:
        if self.daemon is None:
            return
        self.daemon.proc.send_signal(signal.SIGTERM)
        assert self.daemon.proc.wait(timeout=20) == 0, self.daemon.log()
        assert "Traceback" not in self.daemon.log(), self.daemon.log()

    def both(self, *args: str, code: int, unordered: bool = False, handed: bool = True,
             ) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
        beside = self.run(self.beside, *args)
        alone = self.run(self.alone, *args)
        shown = f"{args}\nbeside:\n{beside.stdout}{beside.stderr}\nalone:\n{alone.stdout}{alone.stderr}"
        assert (beside.returncode, alone.returncode) == (code, code), shown
        assert (HANDED_OVER in beside.stderr) == handed, shown
        assert HANDED_OVER not in alone.stderr, shown
        assert normal(beside, unordered=unordered) == normal(alone, unordered=unordered), shown
        assert "Traceback" not in beside.stderr + alone.stderr, shown
        self.ran.append(args)
        return beside, alone


def calendars(url: str) -> list[dict]:
    return json.loads(fetch(url, "/healthz").body)["calendars"]


def all_in_sync(url: str, count: int) -> bool:
    found = calendars(url)
    return len(found) == count and all(c["ok"] for c in found)


def test_embedded_server_commands_beside_the_daemon_as_alone(tmp_path):
    """accounts, --reset, feeds rotate, export --all, purge, sync [--allow-mass-delete]."""
    path = tmp_path / "programme.toml"
    shutil.copy(SHIPPED, path)
    twins = Twins(tmp_path, {"KLASH_PROGRAMME": str(path), "KLASH_PUBLIC_URL": PUBLIC,
                             "KLASH_PRIVATE_FEEDS": "true", "KLASH_SECRET": SECRET})
    first = twins.run(twins.beside, "sync")
    assert first.returncode == 0, first.stdout + first.stderr
    twins.split()
    daemon = twins.start()
    try:
        wait_for(lambda: all_in_sync(daemon.url, 8), 30, "the daemon's first pass")

        # accounts: the logins work at once, on the daemon's /dav/
        beside, _ = twins.both("accounts", code=0)
        shown = passwords(beside.stdout)
        assert len(shown) == 8
        for user in ("milja-kopsi", "ulla-nord"):
            assert fetch(daemon.url, "/dav/", "PROPFIND",
                         {**basic(user, shown[user]), "Depth": "0"}).status == 207
        twins.both("accounts", code=0)  # now "set earlier", no password shown
        beside, _ = twins.both("accounts", "--reset", "milja-kopsi", code=0)
        new = passwords(beside.stdout)
        assert list(new) == ["milja-kopsi"]
        assert fetch(daemon.url, "/dav/", "PROPFIND",
                     {**basic("milja-kopsi", new["milja-kopsi"]), "Depth": "0"}).status == 207
        assert fetch(daemon.url, "/dav/", "PROPFIND",
                     {**basic("milja-kopsi", shown["milja-kopsi"]), "Depth": "0"}).status == 401
        twins.both("accounts", "--reset", "nobody", code=2)

        # feeds rotate: the old secret address is gone at once, the new one works
        old = re.search(r"feed: +https://klash\.example\.fi(/feeds/mentors/milja-kopsi/\S+\.ics)",
                        twins.run(twins.beside, "feeds").stdout)[1]
        assert fetch(daemon.url, old).status == 200
        beside, alone = twins.both("feeds", "rotate", "milja-kopsi", code=0)
        assert beside.stdout == alone.stdout  # the same new address (same secret, same generation)
        rotated = re.search(r"feed: +https://klash\.example\.fi(/feeds/mentors/milja-kopsi/\S+\.ics)",
                            beside.stdout)[1]
        assert rotated != old
        assert fetch(daemon.url, old).status == 404
        assert fetch(daemon.url, rotated).status == 200
        twins.both("feeds", "rotate", "nobody", code=2)
        twins.both("feeds", "rotate", code=2)

        # export --all: what the daemon writes is what it serves
        site = tmp_path / "out" / "site"
        beside = twins.run(twins.beside, "export", "--all", str(site))
        alone_site = tmp_path / "out-alone" / "site"
        alone = twins.run(twins.alone, "export", "--all", str(alone_site))
        assert (beside.returncode, alone.returncode) == (0, 0), beside.stderr + alone.stderr
        assert HANDED_OVER in beside.stderr
        assert normal(beside) == (lambda o, e: (o, e.replace(str(alone_site), str(site))))(*normal(alone))
        files = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(alone_site).as_posix()
                               for p in alone_site.rglob("*") if p.is_file())
        feeds = [f for f in files if f.endswith(".ics")]
        assert f"feeds/mentors/milja-kopsi/{rotated.rsplit('/', 1)[1]}" in feeds
        assert len(feeds) == 12
        for rel in feeds:
            served = fetch(daemon.url, "/" + rel)
            assert served.status == 200, rel
            assert (site / rel).read_bytes() == served.body, rel
            assert gzip.decompress((site / (rel + ".gz")).read_bytes()) == served.body, rel
        for rel in files:  # the pages show when the programme was loaded, which differs
            if not rel.endswith(".html"):
                assert (site / rel).read_bytes() == (alone_site / rel).read_bytes(), rel
        (tmp_path / "real").mkdir()
        twins.both("export", "--all", str(tmp_path / "real"), code=2)

        # purge, then sync --allow-mass-delete puts the events back; a plain sync finds nothing
        beside, _ = twins.both("purge", "ulla-nord", code=0)
        assert re.search(r"^ok +ulla-nord +1 event of ours found, 1 deleted ", beside.stdout, re.M), \
            beside.stdout
        twins.both("purge", "nobody", code=2)
        beside, _ = twins.both("sync", "--allow-mass-delete", code=0, unordered=True)
        assert "summary: 8 calendars, 0 failed, 1 created, 0 updated, 0 deleted" in beside.stdout
        beside, _ = twins.both("sync", code=0, unordered=True)
        assert "summary: 8 calendars, 0 failed, 0 created, 0 updated, 0 deleted" in beside.stdout
    finally:
        twins.stop()


def test_invites_send_beside_the_daemon_as_alone(tmp_path, smtp):
    path = tmp_path / "programme.toml"
    path.write_text(header() + session("tuleva", "date = 2099-05-04", ["milja-kopsi", "ulla-nord"]))
    twins = Twins(tmp_path, {"KLASH_PROGRAMME": str(path), "KLASH_EMBEDDED_CALDAV": "false",
                             "KLASH_INVITE_DELAY": "3600", **smtp.env()})
    assert twins.run(twins.beside, "sync").returncode == 0  # the sessions' revisions, recorded once
    twins.split()
    daemon = twins.start()
    try:
        wait_for(lambda: fetch(daemon.url, "/healthz").status in (200, 503), 30, "started")
        beside, _ = twins.both("invites", "--send", code=0)
        assert "summary: 2 sent, 0 not sent, 0 held" in beside.stdout
        assert sorted(m.recipients[0] for m in smtp.handler.messages()) == sorted(
            [ADDRESSES["milja-kopsi"], ADDRESSES["ulla-nord"]] * 2)  # one each, from each twin
        beside, _ = twins.both("invites", "--send", code=0)
        assert "summary: 0 sent" in beside.stdout

        # A refused recipient: exit 1 both ways, the others' messages still go out.
        smtp.handler.refuse[ADDRESSES["ulla-nord"]] = "550 5.1.1 <ulla@example.test>: no such user"
        path.write_text(header() + session("tuleva", "date = 2099-05-05", ["milja-kopsi", "ulla-nord"]))
        wait_for(lambda: b"20990505" in fetch(daemon.url, "/feeds/programme.ics").body, 10, "the edit")
        beside, _ = twins.both("invites", "--send", code=1)
        assert "FAILED REQUEST tuleva to ulla-nord: 550 5.1.1" in beside.stdout
        assert "summary: 1 sent, 1 not sent, 0 held" in beside.stdout
    finally:
        twins.stop()


def test_failures_and_bad_input_exit_alike_beside_the_daemon_and_alone(tmp_path):
    """1: a calendar server that went down; 2: an unknown mentor, the embedded server off, no
    secret, no SMTP server, an invalid programme."""
    radicale = start_radicale(tmp_path / "radicale")
    milja = HEADER.replace(
        'name = "Milja Köpsi"\n',
        f'name = "Milja Köpsi"\n[mentors.caldav]\nurl = "{radicale.calendar_url("alice")}"\n'
        'username = "alice"\npassword_env = "PW_ALICE"\n')
    text = programme_text('id = "vantaa"\ntitle = "Vantaa"\ndate = 2019-10-08\n'
                          'mentors = ["milja-kopsi", "ulla-nord"]', header=milja)
    path = tmp_path / "programme.toml"
    path.write_text(text)
    twins = Twins(tmp_path, {"KLASH_PROGRAMME": str(path), "KLASH_EMBEDDED_CALDAV": "false",
                             "KLASH_REQUEST_TIMEOUT": "3", **ENV})
    try:
        first = twins.run(twins.beside, "sync")
        assert first.returncode == 0, first.stdout + first.stderr
        twins.split()
        daemon = twins.start()
        wait_for(lambda: all_in_sync(daemon.url, 1), 30, "the daemon's first pass")
        radicale.stop()  # Milja's server goes down: both twins know an event of ours there
        beside, _ = twins.both("sync", code=1)
        assert re.search(r"^FAILED  milja-kopsi ", beside.stdout, re.M), beside.stdout
        assert "summary: 1 calendars, 1 failed" in beside.stdout
        twins.both("sync", "--allow-mass-delete", code=1)
        twins.both("purge", "milja-kopsi", code=1)
        beside, _ = twins.both("purge", "ulla-nord", code=0)  # feeds only: nothing to purge
        assert "ulla-nord has no calendar of ours: nothing to purge" in beside.stdout
        beside, _ = twins.both("purge", "nobody", code=2)
        assert "no calendar of mentor 'nobody' is known" in beside.stderr
        beside, _ = twins.both("accounts", code=2)
        assert "the embedded CalDAV server is off" in beside.stderr
        beside, _ = twins.both("feeds", "rotate", "milja-kopsi", code=2)
        assert "no server secret" in beside.stderr
        beside, _ = twins.both("invites", "--send", code=2)
        assert "no SMTP server" in beside.stderr

        # An invalid programme is reported by the command itself, before anything is handed over.
        path.write_text(text.replace('title = "Vantaa"', "title = Vantaa"))
        beside, _ = twins.both("purge", "milja-kopsi", code=2, handed=False)
        assert "invalid input" in beside.stderr
        path.write_text(text)
    finally:
        radicale.stop()
        twins.stop()


def test_the_daemon_refuses_requests_too_old_or_for_another_programme(tmp_path):
    path = tmp_path / "programme.toml"
    shutil.copy(SHIPPED, path)
    other = tmp_path / "other.toml"
    other.write_text(SHIPPED.read_text().replace('title = "', 'title = "Toinen ', 1))
    twins = Twins(tmp_path, {"KLASH_PROGRAMME": str(path), "KLASH_EMBEDDED_CALDAV": "false"})
    daemon = twins.start(KLASH_DEBOUNCE="0.2", KLASH_REQUEST_MAX_AGE="60")
    try:
        wait_for(lambda: fetch(daemon.url, "/healthz").status == 200, 30, "started")
        state = twins.beside
        # A request left behind for longer than KLASH_REQUEST_MAX_AGE (60 s here; the
        # default of five minutes would take it): refused, not carried out.
        rid = control.submit(state, "purge", {"mentor": "milja-kopsi"},
                             programme=control.digest(path.read_bytes()), now=time.time() - 90)
        got = control.wait(state, rid, daemon_alive=lambda: daemon.proc.poll() is None)
        assert isinstance(got, control.Answer)
        assert got.code == 2
        assert "s ago, more than the 60 s KLASH_REQUEST_MAX_AGE allows" in got.lines[0][1]
        # A command that read another programme file than the one the daemon applied.
        done = twins.run(state, "purge", "milja-kopsi", "--programme", str(other))
        assert done.returncode == 2, done.stdout + done.stderr
        assert "has not applied the programme file this command read" in done.stderr
        assert str(path) in done.stderr
        assert done.stdout == ""
        # A file saved a moment ago is waited for, then the command goes through.
        path.write_text(SHIPPED.read_text().replace("mentorointi: Janakkalan", "mentorointi! Janakkalan"))
        done = twins.run(state, "export", "--all", str(tmp_path / "site"))
        assert done.returncode == 0, done.stdout + done.stderr
        # The folder and the files in it are the service user's alone.
        assert oct((state / "requests").stat().st_mode & 0o777) == "0o700"
        assert list((state / "requests").iterdir()) == []  # every answer read and removed
    finally:
        twins.stop()


def test_a_daemon_that_stops_mid_request_still_answers(tmp_path):
    """SIGTERM while a handed-over sync waits on a hanging server: the command is told (exit 1)."""
    from tests.fixtures.servers import Fault

    radicale = start_radicale(tmp_path / "radicale")
    milja = HEADER.replace(
        'name = "Milja Köpsi"\n',
        f'name = "Milja Köpsi"\n[mentors.caldav]\nurl = "{radicale.calendar_url("alice")}"\n'
        'username = "alice"\npassword_env = "PW_ALICE"\n')
    path = tmp_path / "programme.toml"
    path.write_text(programme_text('id = "vantaa"\ntitle = "Vantaa"\ndate = 2019-10-08\n'
                                   'mentors = ["milja-kopsi"]', header=milja))
    twins = Twins(tmp_path, {"KLASH_PROGRAMME": str(path), "KLASH_EMBEDDED_CALDAV": "false", **ENV})
    try:
        daemon = twins.start()
        wait_for(lambda: all_in_sync(daemon.url, 1), 30, "the daemon's first pass")
        radicale.recorder.faults.append(Fault("hang"))
        radicale.recorder.reset()
        full = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
        full.update(twins.env, KLASH_STATE_DIR=str(twins.beside))
        command = subprocess.Popen([sys.executable, "-m", "klash_sync", "sync"], cwd=ROOT, env=full,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: radicale.recorder.count() > 0, 15, "the handed-over sync at the server")
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        out, err = command.communicate(timeout=30)
        assert command.returncode == 1, out + err
        assert HANDED_OVER in err
        assert re.search(r"^FAILED  milja-kopsi +the daemon stopped", out, re.M), out + err
        assert daemon.proc.wait(timeout=20) == 0
        assert time.monotonic() - started < 10
    finally:
        radicale.stop()
        twins.stop()


def test_site_dir_follows_every_applied_change(tmp_path):
    """KLASH_SITE_DIR: the daemon publishes the static site at start, after an edit and after
    `feeds rotate`, with no cron job."""
    path = tmp_path / "programme.toml"
    shutil.copy(SHIPPED, path)
    site = tmp_path / "www" / "site"
    twins = Twins(tmp_path, {"KLASH_PROGRAMME": str(path), "KLASH_EMBEDDED_CALDAV": "false",
                             "KLASH_PRIVATE_FEEDS": "true", "KLASH_SECRET": SECRET,
                             "KLASH_PUBLIC_URL": PUBLIC})
    daemon = twins.start(KLASH_SITE_DIR=str(site), KLASH_DEBOUNCE="0.5")
    try:
        feed = site / "feeds" / "programme.ics"
        wait_for(feed.is_file, 30, "the site at start")
        assert site.is_symlink()
        assert feed.read_bytes() == fetch(daemon.url, "/feeds/programme.ics").body
        # An edit: in the site within the debounce and one pass (polled, not timed).
        text = path.read_text()
        title = re.search(r'^title = "([^"]+)"', text, re.M)[1]
        path.write_text(text.replace(f'title = "{title}"', f'title = "{title} (siirretty)"', 1))
        wait_for(lambda: f"{title} (siirretty)".encode() in feed.read_bytes().replace(b"\r\n ", b""),
                 30, "the edit in the site")
        wait_for(lambda: feed.read_bytes() == fetch(daemon.url, "/feeds/programme.ics").body, 10,
                 "the site equal to what the daemon serves")
        # feeds rotate beside the daemon: the site drops the old secret address for the new one.
        mine = site / "feeds" / "mentors" / "milja-kopsi"
        [before] = [p.name for p in mine.glob("*.ics")]
        done = twins.run(twins.beside, "feeds", "rotate", "milja-kopsi")
        assert done.returncode == 0, done.stdout + done.stderr
        wait_for(lambda: [p.name for p in mine.glob("*.ics")] not in ([before], []), 30,
                 "the rotated address in the site")
        [after] = [p.name for p in mine.glob("*.ics")]
        assert f"/feeds/mentors/milja-kopsi/{after}" in done.stdout
    finally:
        twins.stop()
