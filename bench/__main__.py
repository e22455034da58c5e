"""The benchmark: what a sync and a feed cost, beside vdirsyncer and the server's own floor.

    python -m bench [--sessions 1000] [--mentors 100] [--server radicale|xandikos]

One run measures everything, so every ratio compares timings taken on the same machine
in the same minutes. Requests are counted at the CalDAV server (bench/davserver.py runs
it in its own process); CPU time is ours (or vdirsyncer's, as a child process).
Results are printed as a table and written to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from base64 import b64encode
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.davserver import PASSWORD  # noqa: E402
from klash_sync.deliver.caldav.sync import Syncer, desired_for  # noqa: E402
from klash_sync.programme.load import parse  # noqa: E402
from klash_sync.service.publish import publish  # noqa: E402
from klash_sync.settings import Settings  # noqa: E402
from klash_sync.state.store import Store  # noqa: E402
from klash_sync.status import Live  # noqa: E402
from klash_sync.web.app import App  # noqa: E402
from klash_sync.web.server import bind, serve, shutdown  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Row:
    name: str
    wall: float | None = None
    cpu: float | None = None
    requests: int | None = None
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------ programme


def programme_text(sessions: int, mentors: int, *, seed: int = 2019, targets: dict | None = None,
                   shift: set[int] | None = None) -> str:
    """A deterministic programme: ``sessions`` sessions, two mentors each."""
    rng = random.Random(seed)
    lines = ['[programme]\nname = "Klash bench"\nuid_domain = "bench.klash.test"\norganiser = "Bench"\n']
    for m in range(mentors):
        lines.append(f'[[mentors]]\nid = "m{m}"\nname = "Mentor {m}"\n')
        if targets:
            url, user = targets[m]
            lines.append(f'[mentors.caldav]\nurl = "{url}"\nusername = "{user}"\n'
                         f'password_env = "BENCH_PW"\ncalendar = "klash-m{m}"\n')
    start = date(2019, 9, 1)
    for s in range(sessions):
        a, b = rng.sample(range(mentors), 2)
        day = start + timedelta(days=rng.randrange(300))
        hour = 8 + rng.randrange(8)
        if shift and s in shift:
            day += timedelta(days=1)
        lines.append(
            f'[[sessions]]\nid = "s{s}"\ntitle = "Session {s}"\nmunicipality = "Kunta {s % 7}"\n'
            f'location = "Paikka {s % 13}"\nstart = {day}T{hour:02d}:00:00\n'
            f'end = {day}T{hour + 2:02d}:00:00\nmentors = ["m{a}", "m{b}"]\n'
            f'description = "Kuvaus {s}: mentorointi."\n')
    return "\n".join(lines)


# -------------------------------------------------------------------- servers


class DavServer:
    def __init__(self, kind: str, root: Path, users: int) -> None:
        self.kind = kind
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.davserver", kind, str(root), str(users)],
                                     cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{self.port}"

    def count(self, reset: bool = False) -> int:
        path = "/__bench__/reset" if reset else "/__bench__/count"
        req = urllib.request.Request(self.base + path, method="POST" if reset else "GET")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return sum(json.load(resp).values())

    def calendar(self, m: int, name: str) -> tuple[str, str]:
        """(collection URL, user) of a calendar, created now (not counted in any phase)."""
        if self.kind == "radicale":
            url, user = f"{self.base}/u{m}/{name}/", f"u{m}"
        else:
            url, user = f"{self.base}/user/calendars/m{m}-{name}/", "user"
        req = urllib.request.Request(url, method="MKCALENDAR", headers=_auth(user))
        with urllib.request.urlopen(req, timeout=30):
            pass
        return url, user

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _auth(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + b64encode(f"{user}:{PASSWORD}".encode()).decode()}


def measure(row: Row, server: DavServer | None, work, *, children: bool = False) -> object:
    if server is not None:
        server.count(reset=True)
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    before = resource.getrusage(who)
    start = time.perf_counter()
    result = work()
    row.wall = time.perf_counter() - start
    after = resource.getrusage(who)
    row.cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if server is not None:
        row.requests = server.count()
    return result


# ---------------------------------------------------------------------- phases


def floor_puts(server: DavServer, calendars: list[list[tuple[str, str, bytes]]], workers: int) -> None:
    """The server's own floor: the same PUTs over keep-alive connections, nothing else.

    Like our sync, calendars go in parallel and each calendar's PUTs in sequence
    (Xandikos answers 423 Locked to parallel writes into one calendar).
    """
    import http.client

    chunks = [calendars[n::workers] for n in range(workers)]
    errors: list[BaseException] = []

    def run(chunk: list[list[tuple[str, str, bytes]]]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            for calendar in chunk:
                for url, user, body in calendar:
                    conn.request("PUT", url, body, {**_auth(user), "If-None-Match": "*",
                                                     "Content-Type": "text/calendar; charset=utf-8"})
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status not in (201, 204):
                        raise RuntimeError(f"floor PUT {url}: {resp.status}")
        except BaseException as e:  # reported by the caller, not lost in a thread
            errors.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def vdirsyncer_config(tmp: Path, feed_base: str, targets: dict[int, tuple[str, str]]) -> Path:
    lines = [f'[general]\nstatus_path = "{tmp}/vdir-status/"\n']
    for m, (url, user) in targets.items():
        lines.append(
            f'[pair p{m}]\na = "feed{m}"\nb = "cal{m}"\ncollections = null\n'
            f'conflict_resolution = "a wins"\n\n'
            f'[storage feed{m}]\ntype = "http"\nurl = "{feed_base}/feeds/mentors/m{m}.ics"\n\n'
            f'[storage cal{m}]\ntype = "caldav"\nurl = "{url}"\nusername = "{user}"\n'
            f'password = "{PASSWORD}"\n')
    path = tmp / "vdirsyncer.conf"
    path.write_text("\n".join(lines))
    return path


def run_vdirsyncer(config: Path, command: str = "sync") -> None:
    # Beside our Python first: a virtual environment's scripts are not on PATH unless activated.
    exe = shutil.which("vdirsyncer", path=str(Path(sys.executable).parent)) or shutil.which("vdirsyncer")
    if exe is None:
        raise SystemExit("vdirsyncer is not installed: pip install -e '.[test]'")
    done = subprocess.run([exe, "-c", str(config), command], capture_output=True, text=True,
                          timeout=3600, input="y\n" * 10_000)
    if done.returncode != 0:
        raise RuntimeError("vdirsyncer failed:\n" + done.stderr[-2000:])


def nginx_serving(tmp: Path, body: bytes) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(exe).exists():
        raise SystemExit("nginx is not installed (Debian: apt-get install nginx-light)")
    www = tmp / "www"
    (www / "feeds").mkdir(parents=True)
    (www / "feeds" / "programme.ics").write_bytes(body)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/nginx-error.log;\n"
        "events { worker_connections 1024; }\n"
        "http {\n  access_log off;\n  etag on;\n  types { text/calendar ics; }\n"
        f"  client_body_temp_path {tmp}/nginx-body;\n  proxy_temp_path {tmp}/nginx-proxy;\n"
        f"  fastcgi_temp_path {tmp}/nginx-fcgi;\n  uwsgi_temp_path {tmp}/nginx-uwsgi;\n"
        f"  scgi_temp_path {tmp}/nginx-scgi;\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n    root {www};\n  }}\n}}\n")
    proc = subprocess.Popen([exe, "-c", str(conf), "-p", str(tmp), "-g", "daemon off;"],
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    _wait_http(url + "/feeds/programme.ics")
    return proc, url


def _wait_http(url: str, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_klash(args: list[str], env: dict[str, str],
                log: Path | None = None) -> tuple[subprocess.Popen, str]:
    import re

    full = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    full.update(env, KLASH_PORT="0", KLASH_LOG_LEVEL="INFO")
    proc = subprocess.Popen([sys.executable, "-m", "klash_sync", *args], cwd=ROOT, env=full,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        m = re.search(r"(?:listening on|serving feeds on) (http://\S+)", line)
        if m:
            def drain() -> None:
                with open(log or os.devnull, "a", encoding="utf-8") as sink:
                    for rest in proc.stderr:  # type: ignore[union-attr]
                        sink.write(rest)
            threading.Thread(target=drain, daemon=True).start()
            return proc, m.group(1)
        if not line and proc.poll() is not None:
            break
    raise RuntimeError("klash-sync did not start")


def load(url: str, path: str, requests: int, conditional: float, *, tool: str = "wrk",
         seconds: float = 10.0) -> dict:
    """Requests per second for one feed: Debian's wrk (C) by default, else bench/load.py.

    The Python generator shares the two cores with the server it measures and caps at a
    few thousand requests/s, so it hides how much faster nginx is; wrk does not.
    """
    if tool == "wrk":
        return load_wrk(url, path, conditional, seconds)
    done = subprocess.run([sys.executable, "-m", "bench.load", url, path, "--requests", str(requests),
                           "--conditional", str(conditional), "--workers", "8"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800, check=True)
    return json.loads(done.stdout)


def load_wrk(url: str, path: str, conditional: float, seconds: float) -> dict:
    """wrk, 2 threads, 16 keep-alive connections; conditional means every request revalidates."""
    import re

    headers: list[str] = []
    if conditional:
        with urllib.request.urlopen(url + path, timeout=30) as resp:
            resp.read()
            headers = ["-H", f"If-None-Match: {resp.headers.get('ETag', '')}"]
    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk), or use --load python")
    done = subprocess.run([exe, "-t2", "-c16", f"-d{max(1, round(seconds))}s", *headers, url + path],
                          capture_output=True, text=True, timeout=seconds + 120, check=True)
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": rps, "requests": total, "non_2xx_3xx": int(bad.group(1)) if bad else 0,
            "errors": sum(int(x) for x in errors.groups()) if errors else 0, "tool": "wrk"}


def peak_memory_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


# ------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--mentors", type=int, default=100)
    parser.add_argument("--server", choices=["radicale", "xandikos"], default="radicale")
    parser.add_argument("--feed-sessions", type=int, default=10_000,
                        help="sessions for the feed and memory measurements")
    parser.add_argument("--feed-mentors", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=5000, help="requests per load measurement")
    parser.add_argument("--workers", type=int, default=4, help="calendars synced at once")
    parser.add_argument("--load", choices=["wrk", "python"], default="wrk",
                        help="load generator for the feed phases (wrk: Debian's, in C)")
    parser.add_argument("--load-seconds", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="klash-bench-"))
    command = " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
    rows: dict[str, Row] = {}
    notes: list[str] = []
    server = DavServer(args.server, tmp / "dav", args.mentors)
    try:
        targets = {m: server.calendar(m, "klash") for m in range(args.mentors)}
        floor_targets = {m: server.calendar(m, "floor") for m in range(args.mentors)}
        vdir_targets = {m: server.calendar(m, "vdir") for m in range(args.mentors)}
        os.environ["BENCH_PW"] = PASSWORD
        text = programme_text(args.sessions, args.mentors, targets=targets)
        programme = parse(text.encode(), "bench.toml")
        shifted = set(random.Random(7).sample(range(args.sessions), max(1, args.sessions // 100)))
        programme2 = parse(programme_text(args.sessions, args.mentors, targets=targets,
                                          shift=shifted).encode(), "bench.toml")
        settings = Settings(state_dir=tmp / "state", embedded_caldav=False, sync_workers=args.workers,
                            _env_file=None)  # type: ignore[call-arg]
        store = Store(tmp / "state" / "state.sqlite3")
        snapshot = publish(programme, store, now=T0, base_url="http://bench")
        syncer = Syncer(settings, store)

        def sync(snap) -> None:
            report = syncer.run(snap)
            if not report.ok:
                raise RuntimeError([r.error for r in report.failed][:3])

        rows["a"] = Row("a. first sync (all creates)")
        measure(rows["a"], server, lambda: sync(snapshot))
        rows["b"] = Row("b. no-op sync")
        measure(rows["b"], server, lambda: sync(snapshot))
        snapshot2 = publish(programme2, store, now=T0 + timedelta(hours=1), base_url="http://bench")
        changed_events = sum(len(s.mentors) for s in programme2.sessions if int(s.id[1:]) in shifted)
        rows["c"] = Row(f"c. 1% rescheduled ({len(shifted)} sessions, {changed_events} events)")
        measure(rows["c"], server, lambda: sync(snapshot2))

        bodies = []
        for m in range(args.mentors):
            url, user = floor_targets[m]
            bodies.append([(url + d.name, user, d.body) for d in desired_for(snapshot, f"m{m}").values()])
        rows["d"] = Row("d. floor: the same PUTs, keep-alive loop")
        measure(rows["d"], server, lambda: floor_puts(server, bodies, args.workers))

        # e. vdirsyncer, syncing our per-mentor feeds into fresh calendars on the same server.
        live = Live(snapshot)
        feed_settings = Settings(host="127.0.0.1", port=0, state_dir=tmp / "feeds",
                                 _env_file=None)  # type: ignore[call-arg]
        app = App(live, feed_settings)
        feed_server, feed_settings = bind(app, feed_settings)
        feed_thread = threading.Thread(target=serve, args=(feed_server,), daemon=True)
        feed_thread.start()
        live.set_snapshot(publish(programme, Store(tmp / "feeds" / "s.sqlite3"), now=T0,
                                  base_url=feed_settings.base_url))
        config = vdirsyncer_config(tmp, feed_settings.base_url, vdir_targets)
        run_vdirsyncer(config, "discover")  # set-up, not measured
        rows["e1"] = Row("e. vdirsyncer first sync")
        measure(rows["e1"], server, lambda: run_vdirsyncer(config), children=True)
        rows["e2"] = Row("e. vdirsyncer no-op sync")
        measure(rows["e2"], server, lambda: run_vdirsyncer(config), children=True)
        live.set_snapshot(publish(programme2, Store(tmp / "feeds" / "s.sqlite3"),
                                  now=T0 + timedelta(hours=1), base_url=feed_settings.base_url))
        rows["e3"] = Row("e. vdirsyncer 1% rescheduled")
        measure(rows["e3"], server, lambda: run_vdirsyncer(config), children=True)
        shutdown(feed_server, feed_thread)
        store.close()
    finally:
        server.stop()

    # f. feeds at scale: render time, then full and conditional GETs against us and nginx.
    big = programme_text(args.feed_sessions, args.feed_mentors)
    big_path = tmp / "big.toml"
    big_path.write_text(big)
    big_programme = parse(big.encode(), "big.toml")
    rows["f1"] = Row(f"f. render all feeds, {args.feed_sessions} sessions")
    big_snapshot = measure(rows["f1"], None, lambda: publish(
        big_programme, Store(tmp / "render" / "s.sqlite3"), now=T0, base_url="http://bench"))
    ours, ours_url = start_klash(["serve"], {"KLASH_PROGRAMME": str(big_path),
                                             "KLASH_STATE_DIR": str(tmp / "serve")})
    nginx, nginx_url = nginx_serving(tmp / "nginx", big_snapshot.feeds["/feeds/programme.ics"].body)  # type: ignore[union-attr]
    try:
        for key, label, conditional in (("full", "full GET", 0.0), ("cond", "conditional GET (304)", 1.0)):
            mine = load(ours_url, "/feeds/programme.ics", args.requests, conditional, tool=args.load,
                        seconds=args.load_seconds)
            theirs = load(nginx_url, "/feeds/programme.ics", args.requests, conditional, tool=args.load,
                          seconds=args.load_seconds)
            for result in (mine, theirs):
                if result["errors"] or result["non_2xx_3xx"]:
                    raise RuntimeError(f"load errors: {result}")
            rows[f"f-{key}"] = Row(f"f. {label}, requests/s", extra={"ours": mine["rps"],
                                                                     "nginx": theirs["rps"]})
    finally:
        ours.terminate()
        ours.wait(timeout=20)
        nginx.terminate()
        nginx.wait(timeout=20)

    # g. peak memory of the daemon holding the big programme.
    daemon, daemon_url = start_klash(["run"], {"KLASH_PROGRAMME": str(big_path),
                                               "KLASH_STATE_DIR": str(tmp / "daemon"),
                                               "KLASH_EMBEDDED_CALDAV": "false"})
    try:
        _wait_http(daemon_url + "/healthz")
        for path in ("/", "/feeds/programme.ics", "/feeds/mentors/m0.ics", "/metrics"):
            _wait_http(daemon_url + path)
        rows["g"] = Row(f"g. peak memory of `run`, {args.feed_sessions} sessions / "
                        f"{args.feed_mentors} mentors", extra={"MB": peak_memory_kb(daemon.pid) / 1024})
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)
    shutil.rmtree(tmp, ignore_errors=True)

    report = render(rows, args, command, notes)
    print(report)
    args.out.write_text(report + _kept_analysis(args.out))
    return 0


MARKER = "<!-- analysis: kept when the benchmark rewrites this file -->"


def _kept_analysis(path: Path) -> str:
    """The hand-written analysis below the marker survives a new run of the benchmark."""
    if not path.exists():
        return ""
    text = path.read_text()
    return "\n" + text[text.index(MARKER):] if MARKER in text else ""


def _fmt(value: float | int | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value}{unit}"
    return f"{value:.3f}{unit}" if value < 10 else f"{value:.1f}{unit}"


def render(rows: dict[str, Row], args: argparse.Namespace, command: str, notes: list[str]) -> str:
    calendars = args.mentors
    a, b, c, d = rows["a"], rows["b"], rows["c"], rows["d"]
    e1, e2, e3 = rows["e1"], rows["e2"], rows["e3"]
    full, cond = rows["f-full"].extra, rows["f-cond"].extra
    lines = [
        "# klash-sync benchmark results", "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}",
        f"- command: `{command}`",
        f"- workload: {args.sessions} sessions, {args.mentors} mentors (one calendar each), two mentors "
        f"a session; CalDAV server: {args.server} in its own process, requests counted at the server",
        "",
        "| measurement | wall s | CPU s | requests |",
        "|---|---:|---:|---:|",
    ]
    for key in ("a", "b", "c", "d", "e1", "e2", "e3", "f1"):
        row = rows[key]
        lines.append(f"| {row.name} | {_fmt(row.wall)} | {_fmt(row.cpu)} | {_fmt(row.requests)} |")
    lines += [
        "", f"Feeds measured with {_tool(args)}; "
        "nginx serves the same bytes `klash-sync export --all` writes (the static export).",
        "", "| feeds | ours | nginx, static export | ours / nginx |", "|---|---:|---:|---:|",
        f"| full GET, requests/s | {full['ours']:.0f} | {full['nginx']:.0f} | "
        f"{full['ours'] / full['nginx']:.2f} |",
        f"| conditional GET (304), requests/s | {cond['ours']:.0f} | {cond['nginx']:.0f} | "
        f"{cond['ours'] / cond['nginx']:.2f} |",
        "", f"Peak memory of `klash-sync run`: {rows['g'].extra['MB']:.0f} MB ({rows['g'].name[3:]}).",
        "", "## Ratios and targets", "",
        "| target | measured | met |", "|---|---|---|",
        f"| first sync ≤ 1.15 × floor (wall) | {a.wall / d.wall:.2f} × | {_yes(a.wall / d.wall <= 1.15)} |",
        f"| no-op: ≤ 1 request per calendar, no write | {b.requests} requests for {calendars} calendars "
        f"| {_yes((b.requests or 0) <= calendars)} |",
        f"| no-op faster than vdirsyncer's no-op | {b.wall:.3f} s vs {e2.wall:.3f} s "
        f"({b.wall / e2.wall:.2f} ×) | {_yes(b.wall < e2.wall)} |",
        f"| 1%: requests ≤ changed events + 1 per calendar | {c.requests} ≤ "
        f"{_changed(c) + calendars} | {_yes((c.requests or 0) <= _changed(c) + calendars)} |",
        f"| 1% faster than vdirsyncer | {c.wall:.3f} s vs {e3.wall:.3f} s ({c.wall / e3.wall:.2f} ×) "
        f"| {_yes(c.wall < e3.wall)} |",
        f"| conditional GET ≥ 50% of nginx | {cond['ours'] / cond['nginx']:.0%} | "
        f"{_yes(cond['ours'] >= 0.5 * cond['nginx'])} |",
        f"| daemon peak memory < 200 MB | {rows['g'].extra['MB']:.0f} MB "
        f"| {_yes(rows['g'].extra['MB'] < 200)} |",
        "", f"First sync: ours / vdirsyncer = {a.wall / e1.wall:.2f} × wall, "
        f"{a.requests} vs {e1.requests} requests.", "",
    ]
    lines += notes
    return "\n".join(lines) + "\n"


def _tool(args: argparse.Namespace) -> str:
    if args.load == "wrk":
        return f"wrk (2 threads, 16 keep-alive connections, {args.load_seconds:g} s a run)"
    return f"bench/load.py (Python, {args.requests} requests a run)"


def _changed(row: Row) -> int:
    return int(row.name.split("sessions, ")[1].split(" events")[0])


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


if __name__ == "__main__":
    sys.exit(main())
