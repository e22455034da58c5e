"""Shared fixtures: programme files, the CLI as a subprocess, our HTTP server on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from klash_sync.settings import Settings
from klash_sync.status import Live
from klash_sync.web.app import App
from klash_sync.web.server import bind, bound_url, serve, shutdown

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "programme.toml"

HEADER = """
[programme]
name = "Testiohjelma"
timezone = "Europe/Helsinki"
uid_domain = "klash.test"
organiser = "Kuntaliitto"

[[mentors]]
id = "milja-kopsi"
name = "Milja Köpsi"

[[mentors]]
id = "ulla-nord"
name = "Ulla Nord"
"""


def programme_text(*sessions: str, header: str = HEADER) -> str:
    """A programme with the two test mentors and the given [[sessions]] blocks."""
    return header + "".join("\n[[sessions]]\n" + s.strip() + "\n" for s in sessions)


@dataclass
class CliResult:
    code: int
    out: str
    err: str
    raw: bytes


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> CliResult:
    """Run ``python -m klash_sync`` as a user would, in a clean KLASH_* environment."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "klash_sync", *args],
        cwd=cwd or ROOT, env=full_env, capture_output=True, timeout=timeout, check=False,
    )
    return CliResult(proc.returncode, proc.stdout.decode(errors="replace"),
                     proc.stderr.decode(errors="replace"), proc.stdout)


@pytest.fixture
def write_programme(tmp_path: Path):
    def write(text: str | bytes, name: str = "programme.toml") -> Path:
        path = tmp_path / name
        if isinstance(text, str):
            path.write_text(text, encoding="utf-8")
        else:
            path.write_bytes(text)
        return path
    return write


@dataclass
class RunningServer:
    url: str
    live: Live
    app: App


@pytest.fixture
def serve_live(tmp_path: Path) -> Iterator:
    """Start our WSGI app under waitress on a free loopback port, in this process."""
    servers = []

    def start(live: Live, **settings_kw: object) -> RunningServer:
        settings = Settings(host="127.0.0.1", port=0, state_dir=tmp_path / "state",
                            _env_file=None, **settings_kw)  # type: ignore[call-arg]
        app = App(live, settings)
        server, settings = bind(app, settings)
        thread = threading.Thread(target=serve, args=(server,), daemon=True)
        thread.start()
        servers.append((server, thread))
        return RunningServer(bound_url(server), live, app)

    yield start
    for server, thread in servers:
        shutdown(server, thread)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch(url: str, path: str = "/", method: str = "GET", headers: dict[str, str] | None = None,
          body: bytes | None = None, timeout: float = 10) -> Response:
    """One HTTP request with http.client: no redirects, no decompression, nothing hidden."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


@dataclass
class EmbeddedSite:
    running: RunningServer
    embedded: object  # klash_sync.targets.embedded.Embedded
    snapshot: object  # klash_sync.feeds.Snapshot
    store: object  # klash_sync.state.Store, closed by the caller


def synced_embedded_site(serve_live, tmp_path: Path) -> EmbeddedSite:
    """Our server with /dav/ mounted and the shipped programme synced into its calendars."""
    from datetime import UTC, datetime

    from klash_sync.deliver.caldav.sync import Syncer
    from klash_sync.embedded.mount import Embedded
    from klash_sync.programme.load import load
    from klash_sync.service.publish import publish
    from klash_sync.state.store import Store

    state = tmp_path / "state"
    embedded = Embedded(state)
    store = Store(state / "state.sqlite3")
    live = Live()
    running = serve_live(live)
    running.app.dav = embedded.mounted
    settings = Settings(state_dir=state, _env_file=None)  # type: ignore[call-arg]
    snapshot = publish(load(SHIPPED), store, now=datetime(2026, 1, 1, tzinfo=UTC), base_url=running.url)
    live.set_snapshot(snapshot)
    report = Syncer(settings, store, embedded=embedded, dav_base=running.url).run(snapshot)
    assert report.ok, [r.error for r in report.results]
    return EmbeddedSite(running, embedded, snapshot, store)
