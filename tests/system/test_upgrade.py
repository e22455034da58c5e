"""An installation made by the release before the move upgrades in place.

Release 443571d kept each embedded calendar under the service's principal
(``/dav/klash.service/<mentor>/``). The test installs with that release's own code
(``git archive`` of the commit, from the repository the test runs in), syncs a
programme twice so that an event reaches SEQUENCE 1, puts an event of someone else's
into a calendar through the running old service, stops it, and starts this code on
the same state directory, as an operator upgrading would. Then: the same UIDs, no
SEQUENCE lower, no duplicates, the foreign event byte for byte the same, unchanged
events never rewritten (same file, same inode), and a mentor finds the calendar
from the server address.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
from lxml import etree

from klash_sync.embedded.mount import SERVICE_USER, Embedded
from klash_sync.status import Live
from tests.fixtures.common import ROOT, fetch, programme_text, run_cli
from tests.fixtures.servers import foreign_event

OLD_RELEASE = "443571d"
PUBLIC_URL = "https://kunnat.example.fi/klash"
PREFIX = "/klash"
MENTORS = ("milja-kopsi", "ulla-nord")
SESSIONS = (
    'id = "joensuu"\ntitle = "Joensuu"\nmunicipality = "Joensuu"\n'
    'start = 2019-10-01T10:00:00\nend = 2019-10-01T12:00:00\nmentors = ["milja-kopsi"]',
    'id = "vantaa"\ntitle = "Vantaa"\nmunicipality = "Vantaa"\n'
    'start = 2019-10-08T13:00:00\nend = 2019-10-08T15:00:00\nmentors = ["milja-kopsi", "ulla-nord"]',
    'id = "yhteinen"\ntitle = "Yhteinen"\nlocation = "Helsinki"\ndate = 2019-10-15\n'
    'mentors = ["ulla-nord"]',
)
FOREIGN = foreign_event("dentist-1@example.org", "Hammaslääkäri")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def old_release(tmp_path: Path) -> Path:
    """The old release's source tree, from this repository's history."""
    done = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", OLD_RELEASE],
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, (
        f"the upgrade test needs commit {OLD_RELEASE} in this clone (a full clone, not a "
        f"shallow one): {done.stderr.decode(errors='replace')}")
    tree = tmp_path / "old"
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def environment(code: Path, state: Path, programme: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    # A fixed public URL (without one, event URLs name the port, which is new at every start),
    # at a sub-path as behind a reverse proxy: the move also takes the calendars under it.
    env.update(PYTHONPATH=str(code), KLASH_PROGRAMME=str(programme), KLASH_STATE_DIR=str(state),
               KLASH_PORT="0", KLASH_REQUEST_TIMEOUT="5", KLASH_PUBLIC_URL=PUBLIC_URL)
    return env


class Daemon:
    """``klash-sync run`` of the given code tree (``python -m`` from inside it, so it is that code)."""

    def __init__(self, code: Path, state: Path, programme: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "klash_sync", "run"], cwd=code,
                                     env=environment(code, state, programme),
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        found = threading.Event()
        self.url = ""

        def pump() -> None:
            for line in self.proc.stderr:  # type: ignore[union-attr]
                self.lines.append(line)
                m = re.search(r"listening on (http://\S+)", line)
                if m and not self.url:
                    self.url = m.group(1)
                    found.set()

        threading.Thread(target=pump, daemon=True).start()
        assert found.wait(30), "the daemon did not start:\n" + "".join(self.lines)

    def calendars(self) -> list[dict]:
        return json.loads(fetch(self.url, "/healthz").body)["calendars"]

    def wait_in_sync(self, limit: float = 30) -> list[dict]:
        deadline = time.monotonic() + limit
        while True:
            calendars = self.calendars()
            if len(calendars) == len(MENTORS) and all(c["ok"] for c in calendars):
                return calendars
            assert time.monotonic() < deadline, (calendars, "".join(self.lines))
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=20) == 0, "".join(self.lines)


def read_calendar(url: str, path: str, auth: dict[str, str]) -> dict[str, bytes]:
    """Every resource in a calendar over HTTP: file name -> body."""
    r = fetch(url, path, "PROPFIND", {**auth, "Depth": "1"})
    assert r.status == 207, (path, r.status, r.body[:300])
    hrefs = [h.text for h in etree.fromstring(r.body).findall("{DAV:}response/{DAV:}href")]
    found = {}
    for href in hrefs:
        if href.rstrip("/") == path.rstrip("/"):
            continue
        got = fetch(url, href, headers=auth)
        assert got.status == 200, href
        found[href.rsplit("/", 1)[1]] = got.body
    return found


def uid_and_sequence(body: bytes) -> tuple[str, int]:
    uid = re.search(rb"^UID:(\S+)\r?$", body, re.M)
    sequence = re.search(rb"^SEQUENCE:(\d+)\r?$", body, re.M)
    assert uid is not None
    return uid.group(1).decode(), int(sequence.group(1)) if sequence else 0


def files(directory: Path) -> dict[str, tuple[int, bytes]]:
    """The stored event files of a Radicale collection: name -> (inode, bytes)."""
    return {p.name: (p.stat().st_ino, p.read_bytes()) for p in directory.glob("*.ics")}


@pytest.mark.slow
def test_an_installation_of_the_previous_release_upgrades_in_place(tmp_path, serve_live):
    old = old_release(tmp_path)
    state = tmp_path / "state"
    programme = tmp_path / "programme.toml"
    programme.write_text(programme_text(*SESSIONS), encoding="utf-8")
    collections = state / "dav" / "collections" / "collection-root"

    # 1. The old release installs, syncs, and syncs an edit (the Joensuu session moves).
    first = run_cli("sync", cwd=old, env=environment(old, state, programme))
    assert first.code == 0, first.out + first.err
    assert (collections / SERVICE_USER / "milja-kopsi").is_dir(), "not the old release's layout"
    programme.write_text(programme_text(*SESSIONS).replace("T10:00", "T11:00").replace("T12:00", "T13:00"),
                         encoding="utf-8")
    second = run_cli("sync", cwd=old, env=environment(old, state, programme))
    assert second.code == 0, second.out + second.err
    assert re.search(r"milja-kopsi +\+0 ~1 -0", second.out), second.out

    # 2. The old service runs; an event of someone else's is put into Milja's calendar with
    #    the service's account (a mentor's login cannot write).
    daemon = Daemon(old, state, programme)
    try:
        daemon.wait_in_sync()
        service = basic(SERVICE_USER, (state / "dav" / "service.password").read_text().strip())
        put = fetch(daemon.url, f"/dav/{SERVICE_USER}/milja-kopsi/dentist.ics", "PUT",
                    {**service, "Content-Type": "text/calendar"}, FOREIGN)
        assert put.status == 201, put
        before = {m: read_calendar(daemon.url, f"/dav/{SERVICE_USER}/{m}/", service) for m in MENTORS}
    finally:
        daemon.stop()
    # One more sync of the old release: it has now seen the foreign event too.
    third = run_cli("sync", cwd=old, env=environment(old, state, programme))
    assert third.code == 0, third.out + third.err
    assert third.out.count("+0 ~0 -0") == 2, third.out
    stored_before = {m: files(collections / SERVICE_USER / m) for m in MENTORS}
    sequences_before = {m: dict(uid_and_sequence(b) for b in before[m].values()) for m in MENTORS}
    assert sequences_before["milja-kopsi"][next(u for u in sequences_before["milja-kopsi"]
                                                if u.startswith("joensuu@"))] >= 1
    assert uid_and_sequence(before["milja-kopsi"]["dentist.ics"])[0] == "dentist-1@example.org"
    spare = tmp_path / "state-copy"
    shutil.copytree(state, spare, symlinks=True)

    # 3. This release starts on the same state directory.
    daemon = Daemon(ROOT, state, programme)
    try:
        health = {c["mentor"]: c for c in daemon.wait_in_sync()}
        service = basic(SERVICE_USER, (state / "dav" / "service.password").read_text().strip())
        after = {m: read_calendar(daemon.url, PREFIX + Embedded.calendar_path(m), service)
                 for m in MENTORS}
        # Nothing is left at the old place.
        leftover = fetch(daemon.url, f"/dav/{SERVICE_USER}/", "PROPFIND", {**service, "Depth": "1"})
        assert leftover.status == 207
        assert len(etree.fromstring(leftover.body).findall("{DAV:}response")) == 1, leftover.body
    finally:
        daemon.stop()
    assert not any(p.is_dir() for p in (collections / SERVICE_USER).iterdir())
    for mentor in MENTORS:
        old_files, new_files = stored_before[mentor], files(collections / mentor / "klash")
        # Same resources, same UIDs, one each; no SEQUENCE went down.
        assert sorted(after[mentor]) == sorted(before[mentor]), mentor
        uids = [uid_and_sequence(b)[0] for b in after[mentor].values()]
        assert len(uids) == len(set(uids))
        assert set(uids) == set(sequences_before[mentor])
        for name, body in after[mentor].items():
            uid, sequence = uid_and_sequence(body)
            assert sequence >= sequences_before[mentor][uid], (mentor, uid)
            if body == before[mentor][name]:  # unchanged: moved, never written again
                assert new_files[name] == old_files[name], (mentor, name)
            else:  # this release renders it differently: an update, announced as one
                assert sequence > sequences_before[mentor][uid], (mentor, uid)
        # The service created nothing, deleted nothing.
        assert (health[mentor]["created"], health[mentor]["deleted"]) == (0, 0), health[mentor]
    assert after["milja-kopsi"]["dentist.ics"] == before["milja-kopsi"]["dentist.ics"]
    assert files(collections / "milja-kopsi" / "klash")["dentist.ics"] == \
        stored_before["milja-kopsi"]["dentist.ics"]

    # 4. Our records followed the move: on the copy taken before the upgrade, the first sync
    #    of this release recognises every event, ours and the foreign one, from one listing
    #    (no reads). The only writes are this release's new rendering of our own events
    #    (RENDER_VERSION), each in place and announced with a higher SEQUENCE.
    upgraded = run_cli("sync", env=environment(ROOT, spare, programme))
    assert upgraded.code == 0, upgraded.out + upgraded.err
    for mentor in MENTORS:
        line = re.search(rf"^ok +{mentor} +\+0 ~(\d+) -0 +\((\d+) requests", upgraded.out, re.M)
        assert line, upgraded.out
        ours = sum(1 for name in before[mentor] if name != "dentist.ics")
        assert int(line.group(1)) == ours
        assert int(line.group(2)) == 1 + ours  # one listing, one PUT per event of ours

    # 5. A mentor adds the calendar from the server address alone and sees every event.
    accounts = run_cli("accounts", "--reset", "milja-kopsi", env=environment(ROOT, state, programme))
    assert accounts.code == 0, accounts.err
    password = re.search(r"user +milja-kopsi\n +password +(\S+)   \(new", accounts.out).group(1)
    running = serve_live(Live())
    running.app.dav = Embedded(state).mounted
    import caldav

    with caldav.DAVClient(url=running.url + "/", username="milja-kopsi", password=password) as client:
        calendars = client.principal().calendars()
        assert [str(c.url).split(running.url)[1] for c in calendars] == ["/dav/milja-kopsi/klash/"]
        seen = {e.icalendar_component["UID"] for e in calendars[0].events()}
    assert seen == {uid_and_sequence(b)[0] for b in after["milja-kopsi"].values()}


def test_moving_is_idempotent_and_never_overwrites(tmp_path):
    """The move itself, on a storage laid out by hand as the old release left it."""
    root = tmp_path / "state" / "dav" / "collections" / "collection-root"
    old = root / SERVICE_USER / "milja-kopsi"
    old.mkdir(parents=True)
    (old / ".Radicale.props").write_text('{"tag": "VCALENDAR"}')
    (old / "a.ics").write_bytes(FOREIGN)
    clash_old = root / SERVICE_USER / "ulla-nord"
    clash_old.mkdir()
    (clash_old / "old.ics").write_bytes(FOREIGN)
    (root / "ulla-nord" / "klash").mkdir(parents=True)
    (root / "ulla-nord" / "klash" / "new.ics").write_bytes(b"new")
    inode = (old / "a.ics").stat().st_ino

    embedded = Embedded(tmp_path / "state")  # moves at start
    moved = root / "milja-kopsi" / "klash"
    assert (moved / "a.ics").read_bytes() == FOREIGN
    assert (moved / "a.ics").stat().st_ino == inode
    assert (moved / ".Radicale.props").is_file()
    assert not old.exists()
    # Both places taken: neither is touched.
    assert (clash_old / "old.ics").read_bytes() == FOREIGN
    assert sorted(p.name for p in (root / "ulla-nord" / "klash").iterdir()) == ["new.ics"]
    assert embedded.migrate() == []
    assert (moved / "a.ics").stat().st_ino == inode
