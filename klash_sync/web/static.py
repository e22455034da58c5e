"""Static publishing: every feed and page written to a folder, swapped in atomically.

For audiences larger than one Python process should serve, nginx, a CDN or object
storage can serve the folder while the daemon only pushes to calendars. The folder is
a symlink to a version directory named after the content; a new export is built
beside it and the symlink is replaced with one rename, so a web server never sees a
half-written export. Feed files carry the feed's Last-Modified as their mtime and a
pre-compressed ``.gz`` twin (nginx ``gzip_static on``), so ETags and 304s stay stable
across exports of an unchanged programme. The README's nginx snippet for this folder
is run against an export by tests/system/test_words_served.py.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from klash_sync.errors import UserError
from klash_sync.render.snapshot import Snapshot
from klash_sync.settings import Settings
from klash_sync.state.records import Change
from klash_sync.status import Live
from klash_sync.web.atom import atom
from klash_sync.web.page import Page
from klash_sync.web.rsvp import linked_feed
from klash_sync.web.texts import LANGUAGES
from klash_sync.web.tokens import FeedKeys

KEEP = 2  # versions kept: the current one and the one before, for clients mid-download
# The daemon exports from two threads (KLASH_SITE_DIR, and `export --all` handed over to it),
# whose build directories and links are named after the one process id.
_EXPORTING = threading.Lock()


def export_all(snapshot: Snapshot, settings: Settings, target: Path,
               keys: FeedKeys | None = None, changes: list[Change] | None = None) -> Path:
    """Write the export and point ``target`` at it; return the version directory."""
    with _EXPORTING:
        return _export(snapshot, settings, target.absolute(), keys, changes)


def _export(snapshot: Snapshot, settings: Settings, target: Path, keys: FeedKeys | None,
            changes: list[Change] | None) -> Path:
    if target.exists() and not target.is_symlink():
        raise UserError(f"{target} exists and is not a klash-sync export (a symlink); "
                        "remove it or choose another folder")
    versions = target.parent / f".{target.name}.versions"
    _public_folder(versions)
    files = _files(snapshot, settings, keys, changes or [])
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + files[rel][0] + b"\0")
    version = versions / digest.hexdigest()[:16]
    if not version.exists():
        building = versions / f".build-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        for rel, (body, mtime) in files.items():
            path = building / rel
            _public_folder(path.parent)
            _public_file(path, body)
            if rel.endswith(".ics"):
                gz = path.with_name(path.name + ".gz")
                _public_file(gz, gzip.compress(body, mtime=0))
                os.utime(gz, (mtime, mtime))
            os.utime(path, (mtime, mtime))
        building.rename(version)
    os.utime(version)  # newest first when pruning, also when an export is reused
    link = target.with_name(f".{target.name}.link-{os.getpid()}")
    link.unlink(missing_ok=True)
    link.symlink_to(version.relative_to(target.parent))
    os.replace(link, target)  # the atomic swap
    _prune(versions, version)
    return version


def _public_folder(path: Path) -> None:
    """Create ``path`` and its missing parents 0755, whatever the umask: the site is meant to
    be served (nginx runs as another user), unlike everything in the state directory."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
            folder.chmod(0o755)


def _public_file(path: Path, body: bytes) -> None:
    """Write a file of the site 0644, whatever the umask (see ``_public_folder``)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o644)
        f.write(body)


def _files(snapshot: Snapshot, settings: Settings, keys: FeedKeys | None,
           changes: list[Change]) -> dict[str, tuple[bytes, float]]:
    files: dict[str, tuple[bytes, float]] = {}
    for feed in snapshot.feeds.values():
        mtime = feed.last_modified.timestamp()
        if feed.kind == "mentor":
            if settings.private_feeds:
                if keys is None:
                    continue
                # with the answer links, as `run` serves it (they lead to its /rsvp/)
                linked = linked_feed(feed, snapshot, feed.key, keys, settings.base_url)
                files[f"feeds/mentors/{feed.key}/{keys.token(feed.key)}.ics"] = (linked.body, mtime)
                continue
        elif not settings.public_feeds:
            continue
        files[feed.path.lstrip("/")] = (feed.body, mtime)
    # Every page in every language, one file each (a plain web server ignores ?lang=);
    # the pages link to each other with the same names (links.Links, static=True).
    page = Page(settings, lambda: changes, static=True)
    newest = max((f.last_modified.timestamp() for f in snapshot.feeds.values()),
                 default=snapshot.loaded_at.timestamp())
    # The pages say when the programme was loaded: here, when what they show last changed,
    # so that exporting an unchanged programme again gives the same bytes (and the same
    # version directory), whatever the minute of the export.
    snapshot = replace(snapshot, loaded_at=datetime.fromtimestamp(newest, UTC))
    live = Live(snapshot)
    for lang in LANGUAGES:
        suffix = page.links.suffix(lang)
        files[f"index{suffix}.html"] = (page.index(snapshot, live, lang).encode(), newest)
        for mentor in snapshot.programme.mentors:
            # Private feeds: the page without the secret link, as /mentors/{id} serves it.
            files[f"mentors/{mentor.id}{suffix}.html"] = (
                page.mentor(snapshot, live, mentor, lang).encode(), newest)
        files[f"changes{suffix}.atom"] = (
            atom(snapshot, changes, lang, settings.base_url, page.links), newest)
    return files


def _prune(versions: Path, current: Path) -> None:
    old = sorted((p for p in versions.iterdir() if p.is_dir() and not p.name.startswith(".")),
                 key=lambda p: p.stat().st_mtime, reverse=True)
    keep = {current} | set(old[:KEEP])
    for path in old:
        if path not in keep:
            shutil.rmtree(path, ignore_errors=True)
