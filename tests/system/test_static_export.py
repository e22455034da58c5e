"""`export --all DIR`: every feed and the page in a folder, swapped in atomically."""

from __future__ import annotations

import gzip
import os

from tests.fixtures.common import programme_text, run_cli

SESSION = ('id = "vantaa"\ntitle = "Vantaa"\nmunicipality = "Vantaa"\ndate = 2019-10-08\n'
           'mentors = ["ulla-nord"]')


def test_export_all_writes_every_feed_and_swaps_atomically(tmp_path, write_programme):
    path = write_programme(programme_text(SESSION))
    env = {"KLASH_STATE_DIR": str(tmp_path / "state"), "KLASH_PUBLIC_URL": "https://klash.example.fi"}
    site = tmp_path / "site"
    first = run_cli("export", "--all", str(site), "--programme", str(path), env=env)
    assert first.code == 0, first.err
    assert site.is_symlink()
    version = os.readlink(site)
    for rel in ("feeds/programme.ics", "feeds/mentors/ulla-nord.ics", "feeds/mentors/milja-kopsi.ics",
                "feeds/municipalities/vantaa.ics", "index.html", "index.en.html"):
        assert (site / rel).is_file(), rel
    feed = (site / "feeds" / "programme.ics").read_bytes()
    assert feed == run_cli("export", "--programme", str(path), env=env).raw
    assert gzip.decompress((site / "feeds" / "programme.ics.gz").read_bytes()) == feed
    assert "https://klash.example.fi/feeds/programme.ics" in (site / "index.html").read_text()
    mtime = (site / "feeds" / "programme.ics").stat().st_mtime

    # Unchanged programme: the same version, the same bytes and mtimes (stable ETags).
    assert run_cli("export", "--all", str(site), "--programme", str(path), env=env).code == 0
    assert os.readlink(site) == version
    assert (site / "feeds" / "programme.ics").stat().st_mtime == mtime

    # A change: a new version behind the same name; old versions are pruned to two.
    for n, day in enumerate(("2019-10-09", "2019-10-10", "2019-10-11")):
        path.write_text(programme_text(SESSION.replace("2019-10-08", day)))
        assert run_cli("export", "--all", str(site), "--programme", str(path), env=env).code == 0
        feed = (site / "feeds" / "programme.ics").read_bytes()
        assert b"DTSTART;VALUE=DATE:" + day.replace("-", "").encode() in feed
        assert n == 0 or os.readlink(site) != version
    versions = [p for p in (tmp_path / ".site.versions").iterdir() if not p.name.startswith(".")]
    assert len(versions) == 2


def test_export_all_refuses_a_real_directory(tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "keep.txt").write_text("mine")
    result = run_cli("export", "--all", str(tmp_path / "www"), env={"KLASH_STATE_DIR": str(tmp_path / "s")})
    assert result.code == 2
    assert "not a klash-sync export" in result.err
    assert (tmp_path / "www" / "keep.txt").read_text() == "mine"


def test_export_all_private_feeds_only_at_secret_paths(tmp_path):
    env = {"KLASH_STATE_DIR": str(tmp_path / "state"), "KLASH_PRIVATE_FEEDS": "true",
           "KLASH_SECRET": "an-export-secret-0123456789"}
    site = tmp_path / "site"
    assert run_cli("export", "--all", str(site), env=env).code == 0
    assert not (site / "feeds" / "mentors" / "milja-kopsi.ics").exists()
    secret_files = list((site / "feeds" / "mentors" / "milja-kopsi").glob("*.ics"))
    assert len(secret_files) == 1
    listed = run_cli("feeds", env=env).out
    assert f"/feeds/mentors/milja-kopsi/{secret_files[0].name}" in listed
