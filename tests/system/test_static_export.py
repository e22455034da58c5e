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


def test_an_unchanged_programme_exports_the_same_bytes_at_any_minute(tmp_path):
    """The pages say when the programme was loaded; an export an hour later of the same
    programme must still be the same version (it showed the export's minute before)."""
    from datetime import UTC, datetime, timedelta

    from klash_sync.programme.load import parse
    from klash_sync.service.publish import publish
    from klash_sync.settings import Settings
    from klash_sync.state.store import Store
    from klash_sync.web.static import export_all

    programme = parse(programme_text(SESSION).encode(), "programme.toml")
    settings = Settings(state_dir=tmp_path / "state", public_url="https://klash.example.fi")
    store = Store(tmp_path / "state.sqlite3")
    try:
        first = publish(programme, store, now=datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC), base_url=None)
        later = publish(programme, store, now=first.loaded_at + timedelta(hours=1, minutes=7),
                        base_url=None, previous=first)
        assert later.loaded_at != first.loaded_at
        one = export_all(first, settings, tmp_path / "site")
        two = export_all(later, settings, tmp_path / "site")
        assert one.name == two.name
        for page in ("index.html", "index.sv.html", "mentors/ulla-nord.html"):
            assert (one / page).read_bytes() == (two / page).read_bytes()
    finally:
        store.close()
