"""The README's serving words hold when run: its nginx snippet and what `serve` serves.

The nginx snippet for the static site is taken from the README and run with Debian's
nginx on a free loopback port over a real `export --all`; `klash-sync serve` runs as a
process and is asked for every address the README says it does not serve.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SHIPPED = ROOT / "config" / "programme.toml"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    return subprocess.run([sys.executable, "-m", "klash_sync", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)

# ------------------------------------------------------------ the nginx snippet


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()


def nginx_serving(tmp: Path, snippet: str) -> tuple[subprocess.Popen[bytes], str]:
    """Debian's nginx on a free loopback port with ``snippet`` as its one server's body."""
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(exe).exists(), "Debian's nginx is needed (.ci/run installs it)"
    port = free_port()
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(f"  {kind}_temp_path {tmp}/nginx-{kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/nginx-error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n  access_log off;\n{temp}"
        f"  server {{\n    listen 127.0.0.1:{port};\n{snippet}\n  }}\n}}\n")
    proc = subprocess.Popen([exe, "-c", str(conf), "-p", str(tmp), "-g", "daemon off;"],
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"nginx stopped: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            get(url + "/")
            return proc, url
        except OSError:
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)


def test_the_readme_nginx_snippet_serves_the_static_site_with_the_right_types(tmp_path):
    blocks = re.findall(r"```nginx\n(.*?)\n```", README, re.S)
    assert len(blocks) == 1, "one nginx snippet in the README"
    site = tmp_path / "site"
    exported = run_cli("export", "--all", str(site), "--programme", str(SHIPPED),
                       "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "/srv/klash/site" in blocks[0]
    proc, url = nginx_serving(tmp_path, blocks[0].replace("/srv/klash/site", str(site)))
    try:
        feeds = sorted(p.relative_to(site).as_posix() for p in site.glob("feeds/**/*.ics"))
        assert "feeds/programme.ics" in feeds
        assert "feeds/mentors/milja-kopsi.ics" in feeds
        assert "feeds/municipalities/vantaa.ics" in feeds
        for feed in feeds:
            status, headers, body = get(f"{url}/{feed}")
            assert status == 200
            assert body == (site / feed).read_bytes()
            assert headers["content-type"] == "text/calendar; charset=utf-8", feed
        # gzip_static serves the export's .gz twin to clients that take gzip.
        _, headers, body = get(f"{url}/feeds/programme.ics", {"Accept-Encoding": "gzip"})
        assert headers.get("content-encoding") == "gzip"
        assert body == (site / "feeds" / "programme.ics.gz").read_bytes()
        for atom in ("changes.atom", "changes.en.atom", "changes.sv.atom"):
            _, headers, _ = get(f"{url}/{atom}")
            assert headers["content-type"] == "application/atom+xml; charset=utf-8", atom
        for page in ("/", "/index.en.html", "/index.sv.html", "/mentors/milja-kopsi.html"):
            _, headers, body = get(url + page)
            assert headers["content-type"] == "text/html; charset=utf-8", page
            assert body.lower().startswith(b"<!doctype html>"), page
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ------------------------------------------------------------ what `serve` serves


def test_serve_serves_what_the_readme_says_and_nothing_more(tmp_path):
    said = re.search(r"`klash-sync serve` serves the page, the feeds and\s+`/changes.atom` only: "
                     r"no (.*?)\.\n", README, re.S)
    assert said, "the README's sentence on `klash-sync serve`"
    absent = re.findall(r"`(/[^`]*)`", said[1])
    assert "/healthz" in absent
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "klash_sync", "serve", "--port", str(port), "--programme", str(SHIPPED),
         "--state-dir", str(tmp_path / "state")],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                get(url + "/")
                break
            except OSError:
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.05)
        for path in ("/", "/feeds/programme.ics", "/changes.atom", "/mentors/milja-kopsi"):
            assert get(url + path)[0] == 200, path
        for path in absent:
            try:
                status = get(url + path)[0]
            except urllib.error.HTTPError as e:
                status = e.code
            assert status == 404, path
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# ------------------------------------------------------------ the change log, as written


def test_the_readme_change_log_example_is_what_an_export_publishes(tmp_path):
    """The edit the README describes, published by `export --all` beside its state: the
    Atom feed and the page carry the README's sentences (test_words.py checks the same
    sentences against render.changes directly)."""
    shown = re.search(r'moving the Vantaa session .*? shows\s+"([^"]+)"\s+and\s+"([^"]+)"', README, re.S)
    assert shown, "the README's change-log example"
    moved, cancelled = shown[1].replace("\n", " "), shown[2].replace("\n", " ")
    config = tmp_path / "config"
    config.mkdir()
    text = SHIPPED.read_text(encoding="utf-8")
    (config / "programme.toml").write_text(text)
    first = run_cli("export", "--all", "site", "--state-dir", "state", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    edited = text.replace("date = 2019-10-08\n", "start = 2019-10-09T09:00:00\nend = 2019-10-09T12:00:00\n")
    edited = edited.replace("date = 2019-10-15\n", 'date = 2019-10-15\nstatus = "cancelled"\n')
    assert edited.count("2019-10-09T") == 2
    (config / "programme.toml").write_text(edited)
    second = run_cli("export", "--all", "site", "--state-dir", "state", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    atom = (tmp_path / "site" / "changes.atom").read_text(encoding="utf-8")
    assert f"<title>{moved}</title>" in atom
    assert f"<title>{cancelled}</title>" in atom
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert moved in page
    assert cancelled in page
