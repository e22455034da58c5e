"""Behind a real nginx at a sub-path, every link on every page stays inside the app.

nginx (Debian's) proxies ``/klash/`` to ``klash-sync run`` (and serves a static export at
``/klash/``) on free loopback ports, with KLASH_PUBLIC_URL naming the proxy's address. A
crawler starts at ``/klash/`` and follows every ``href`` of every page and Atom feed
(``webcal://`` ones as http): each must point under ``/klash/`` and answer 200.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit
from xml.etree import ElementTree as ET

import pytest

from tests.fixtures.common import ROOT, fetch, run_cli

SECRET = "a-proxy-test-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [v for k, v in attrs if k == "href" and v is not None]


def hrefs(body: bytes, content_type: str) -> list[str]:
    if "atom" in content_type:
        return [e.get("href", "") for e in ET.fromstring(body).iter("{http://www.w3.org/2005/Atom}link")]
    if "html" in content_type:
        parser = Hrefs()
        parser.feed(body.decode())
        return parser.found
    return []


def crawl(public: str, *starts: str, limit: int = 400) -> dict[str, int]:
    """Every URL reachable by href from ``public``/ (and ``starts``): its status.

    Fails on a link that leaves the server or the public URL's path.
    """
    prefix = urlsplit(public).path + "/"
    seen: dict[str, int] = {}
    todo = [public + "/", *starts]
    while todo:
        assert len(seen) < limit, "more pages than the programme can have"
        url = todo.pop()
        if url in seen:
            continue
        parts = urlsplit(url)
        answer = fetch(f"http://{parts.netloc}", parts.path + (f"?{parts.query}" if parts.query else ""))
        seen[url] = answer.status
        for href in hrefs(answer.body, answer.headers.get("content-type", "")):
            if href.startswith("webcal://"):
                href = "http://" + href.removeprefix("webcal://")
            target = urldefrag(urljoin(url, href))[0]
            if not target:
                continue
            assert urlsplit(target).netloc == parts.netloc, f"{href} on {url} leaves the server"
            assert urlsplit(target).path.startswith(prefix), f"{href} on {url} leaves {prefix}"
            todo.append(target)
    return seen


@pytest.fixture
def nginx(tmp_path):
    """Starts nginx on a port (the one KLASH_PUBLIC_URL names) with one location block."""
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    procs = []

    def start(port: int, location: str) -> None:
        run = tmp_path / f"nginx-{port}"
        run.mkdir()
        user = "user root;\n" if os.geteuid() == 0 else ""
        (run / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {run}/nginx.pid;\nerror_log {run}/error.log;\n"
            "events { worker_connections 64; }\n"
            "http {\n  access_log off;\n"
            "  types { text/html html; text/calendar ics; application/atom+xml atom; }\n"
            f"  client_body_temp_path {run}/body;\n  proxy_temp_path {run}/proxy;\n"
            f"  fastcgi_temp_path {run}/fcgi;\n  uwsgi_temp_path {run}/uwsgi;\n"
            f"  scgi_temp_path {run}/scgi;\n"
            f"  server {{\n    listen 127.0.0.1:{port};\n    {location}\n  }}\n}}\n")
        proc = subprocess.Popen([exe, "-c", str(run / "nginx.conf"), "-p", str(run), "-g", "daemon off;"],
                                stderr=subprocess.DEVNULL)
        procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                assert proc.poll() is None, (run / "error.log").read_text()
                time.sleep(0.1)
        raise AssertionError("nginx did not start")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def start_run(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    full.update(env, KLASH_PORT="0", KLASH_HOST="127.0.0.1")
    proc = subprocess.Popen([sys.executable, "-m", "klash_sync", "run"], cwd=ROOT, env=full,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            break
        assert line or proc.poll() is None, "klash-sync run exited"
    else:
        raise AssertionError("klash-sync run did not report its address")
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # type: ignore[union-attr]
    while time.monotonic() < deadline:  # the programme is loaded just after the port is bound
        if fetch(m.group(1), "/").status == 200:
            return proc, m.group(1)
        time.sleep(0.1)
    raise AssertionError("klash-sync run did not load the programme")


@pytest.mark.parametrize("private", [False, True], ids=["public-feeds", "private-feeds"])
def test_every_link_works_behind_nginx_at_a_sub_path(tmp_path, nginx, private):
    port = free_port()
    public = f"http://127.0.0.1:{port}/klash"
    env = {"KLASH_STATE_DIR": str(tmp_path / "state"), "KLASH_PUBLIC_URL": public}
    if private:
        env.update(KLASH_PRIVATE_FEEDS="true", KLASH_SECRET=SECRET)
    proc, app = start_run(env)
    try:
        nginx(port, f"location /klash/ {{ proxy_pass {app}/; }}")
        starts = []
        if private:  # a secret page is linked from nowhere: start there too
            listing = run_cli("feeds", env=env).out
            starts = re.findall(r"page:\s+(\S+)", listing)
            assert starts
            assert all(page.startswith(public + "/mentors/") for page in starts)
        pages = crawl(public, *starts)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert {url: status for url, status in pages.items() if status != 200} == {}
    languages = {re.search(r"lang=(\w+)", u).group(1) for u in pages if "lang=" in u}  # type: ignore[union-attr]
    assert {"fi", "en"} <= languages
    assert any("/mentors/" in u for u in pages)
    assert any(u.endswith("/changes.atom?lang=fi") for u in pages)
    assert any("/feeds/" in u and u.endswith(".ics") for u in pages)
    if private:
        assert any(re.search(r"/mentors/[a-z-]+/[A-Za-z0-9_-]+\?lang=en$", u) for u in pages), \
            "the language switch keeps the secret page"


def test_every_link_of_a_static_export_works_behind_nginx(tmp_path, nginx):
    port = free_port()
    public = f"http://127.0.0.1:{port}/klash"
    site = tmp_path / "site"
    env = {"KLASH_STATE_DIR": str(tmp_path / "state"), "KLASH_PUBLIC_URL": public}
    assert run_cli("export", "--all", str(site), env=env).code == 0
    nginx(port, f"location /klash/ {{ alias {site}/; }}")
    pages = crawl(public)
    assert {url: status for url, status in pages.items() if status != 200} == {}
    assert any(u.endswith("/index.en.html") for u in pages)
    assert any(re.search(r"/mentors/[a-z-]+\.en\.html$", u) for u in pages)
    assert any(u.endswith("/changes.atom") for u in pages)
