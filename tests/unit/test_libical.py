"""libical's own checks (as Evolution and GNOME apply them) pass on every feed and stored object.

libical is reached through Debian's gir1.2-ical-3.0 and python3-gi, which exist only for
/usr/bin/python3, so tests/fixtures/libical_check.py runs there as a subprocess.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from klash_sync.deliver.caldav.sync import desired_for
from klash_sync.programme.load import load, parse
from klash_sync.service.publish import publish
from klash_sync.state.store import Store
from tests.fixtures.common import ROOT, SHIPPED, programme_text
from tests.fixtures.hostile import hostile_programme

SYSTEM_PYTHON = "/usr/bin/python3"
CHECKER = ROOT / "tests" / "fixtures" / "libical_check.py"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

VARIED = programme_text(
    'id = "a"\ntitle = "Aika"\nmunicipality = "Vantaa"\nstart = 2019-06-15T10:00:00\n'
    'end = 2019-06-15T12:30:00\nmentors = ["ulla-nord"]\nreminders = ["PT2H", "PT15M"]',
    'id = "b"\ntitle = "Peruttu"\nmunicipality = "Joensuu"\nstatus = "cancelled"\n'
    'start = 2019-11-05T10:00:00\nend = 2019-11-05T11:00:00\nmentors = ["milja-kopsi"]',
    'id = "c"\ntitle = "Alustava"\nstatus = "tentative"\ndate = 2019-10-15\nend_date = 2019-10-16\n'
    'mentors = ["ulla-nord", "milja-kopsi"]',
)


def libical(files: list[Path]) -> dict[str, list[str]]:
    done = subprocess.run([SYSTEM_PYTHON, str(CHECKER), *map(str, files)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def write_all(tmp_path: Path, name: str, text: str, store: Store) -> list[Path]:
    """Every feed and every stored object of a programme, as files."""
    programme = parse(text.encode(), f"{name}.toml")
    snapshot = publish(programme, store, now=T0, base_url="https://klash.example.fi/klash")
    files = []
    for n, feed in enumerate(sorted(snapshot.feeds.values(), key=lambda f: f.path)):
        files.append(tmp_path / f"{name}-feed-{n}.ics")
        files[-1].write_bytes(feed.body)
    for mentor in programme.mentors:
        for m, want in enumerate(desired_for(snapshot, mentor.id).values()):
            files.append(tmp_path / f"{name}-{mentor.id}-{m}.ics")
            files[-1].write_bytes(want.body)
    return files


def test_libical_accepts_every_feed_and_stored_object(tmp_path):
    files = []
    for name, text in (("shipped", SHIPPED.read_text()), ("varied", VARIED),
                       ("hostile", hostile_programme()[0])):
        store = Store(tmp_path / f"{name}.sqlite3")
        files += write_all(tmp_path, name, text, store)
        store.close()
    assert len(files) > 30
    result = libical(files)
    assert set(result) == {str(f) for f in files}
    assert {f: p for f, p in result.items() if p} == {}


def test_the_checker_sees_what_libical_rejects(tmp_path):
    """The check is not hollow: METHOD:PUBLISH without ORGANIZER, and a doubled DTSTART, fail."""
    store = Store(tmp_path / "s.sqlite3")
    snapshot = publish(load(SHIPPED), store, now=T0, base_url="https://klash.example.fi")
    store.close()
    body = snapshot.feeds["/feeds/programme.ics"].body.decode()
    published = tmp_path / "publish.ics"
    published.write_text(body.replace("CALSCALE:GREGORIAN\r\n", "CALSCALE:GREGORIAN\r\nMETHOD:PUBLISH\r\n"),
                         encoding="utf-8")
    start = next(line for line in body.split("\r\n") if line.startswith("DTSTART"))
    doubled = tmp_path / "doubled.ics"
    doubled.write_text(body.replace(start + "\r\n", start + "\r\n" + start + "\r\n", 1), encoding="utf-8")
    result = libical([published, doubled])
    assert any("ORGANIZER" in p for p in result[str(published)])
    assert any("DTSTART" in p for p in result[str(doubled)])
