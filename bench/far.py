"""Benchmark phase "far servers": syncs and edits when the CalDAV servers are D ms away.

    python -m bench.far [--mentors 300 1000] [--delays 0 0.05 0.1] [--hosts 100]

The CalDAV server (Radicale, its own process, requests counted there) sits behind
bench/latency.py, which adds a round-trip time D to every exchange and a whole one to
every new connection, and listens on ``hosts`` ports so mentors are spread over that
many origins, as they are over providers. M mentors, one calendar each, given by
principal URL so the first sync discovers and creates it. For each M and D:

* first sync and no-op pass (in-process ``Syncer``): wall time, our CPU, requests and
  new connections per calendar, and the ratio to the latency-bound ideal: the chain of
  round trips each calendar needs, spread over the calendars in flight at once;
* with ``klash-sync run`` (a real daemon process): the time from saving the programme
  file to the change being on the server, for an edit concerning the mentor whose id
  sorts first, the one who sorts last, and one landing in the middle of a periodic
  pass; the daemon's CPU for the first of them.

The table replaces the "far servers" block of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from base64 import b64encode
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.davserver import PASSWORD  # noqa: E402
from bench.results import write_block  # noqa: E402
from klash_sync.deliver.caldav.calendar import _slug  # noqa: E402
from klash_sync.deliver.caldav.plan import safe_name  # noqa: E402
from klash_sync.deliver.caldav.sync import Syncer  # noqa: E402
from klash_sync.programme.load import parse  # noqa: E402
from klash_sync.service.publish import publish  # noqa: E402
from klash_sync.settings import Settings  # noqa: E402
from klash_sync.state.store import Store  # noqa: E402

BEGIN = "<!-- far servers: begin -->"
END = "<!-- far servers: end -->"
DEBOUNCE = 0.5


def programme(mentors: int, ports: list[int], calendar: str, edits: dict[int, str] | None = None) -> str:
    """M mentors spread over the proxy's ports; M sessions, two mentors each (m<i>, m<i+1>)."""
    edits = edits or {}
    out = ['[programme]\nname = "Far"\nuid_domain = "far.klash.test"\norganiser = "Bench"\n']
    for m in range(mentors):
        out.append(f'[[mentors]]\nid = "m{m}"\nname = "Mentor {m}"\n[mentors.caldav]\n'
                   f'url = "http://127.0.0.1:{ports[m % len(ports)]}/u{m}/"\nusername = "u{m}"\n'
                   f'password_env = "BENCH_PW"\ncalendar = "{calendar}"\n')
    for s in range(mentors):
        day = 1 + s % 28
        out.append(f'[[sessions]]\nid = "s{s}"\ntitle = "Session {s}{edits.get(s, "")}"\n'
                   f'date = 2019-10-{day:02d}\nmentors = ["m{s}", "m{(s + 1) % mentors}"]\n')
    return "\n".join(out)


class Proxy:
    def __init__(self, upstream: int, delay: float, hosts: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.latency", str(upstream), "--delay",
                                      str(delay), "--hosts", str(hosts)], cwd=ROOT,
                                     stdout=subprocess.PIPE, text=True)
        info = json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]
        self.ports, self.control = info["ports"], info["control"]

    def accepted(self, reset: bool = False) -> int:
        with socket.create_connection(("127.0.0.1", self.control), timeout=10) as s:
            s.sendall(b"R" if reset else b"?")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return json.loads(data)["accepted"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(base: str, path: str, user: str) -> bytes | None:
    req = urllib.request.Request(base + path, headers={
        "Authorization": "Basic " + b64encode(f"{user}:{PASSWORD}".encode()).decode()})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read()
    except OSError:
        return None


def wait_quiet(server, quiet: float = 1.0, limit: float = 300, at_least: int = 0) -> None:
    """Until the server has seen ``at_least`` requests, then none for ``quiet`` seconds."""
    deadline = time.monotonic() + limit
    while server.count() < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    last, since = server.count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = server.count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    raise RuntimeError("the daemon never went quiet")


def run_case(server, mentors: int, delay: float, hosts: int, workers: int, tmp: Path,
             interval: int = 20) -> dict:
    from bench.__main__ import start_klash

    tag = f"far-{mentors}-{int(delay * 1000)}"
    proxy = Proxy(server.port, delay, hosts)
    state = tmp / tag
    result: dict = {"M": mentors, "D": delay, "workers": workers, "hosts": hosts}
    try:
        text = programme(mentors, proxy.ports, tag)
        settings = Settings(state_dir=state, embedded_caldav=False, sync_workers=workers,
                            _env_file=None)  # type: ignore[call-arg]
        store = Store(state / "state.sqlite3")
        snapshot = publish(parse(text.encode(), "far.toml"), store, now=datetime(2026, 1, 1, tzinfo=UTC),
                           base_url="http://bench")
        syncer = Syncer(settings, store)
        per_host = settings.sync_per_host
        for phase in ("first", "noop_cold", "noop"):
            server.count(reset=True)
            proxy.accepted(reset=True)
            cpu, start = cpu_self(), time.perf_counter()
            report = syncer.run(snapshot)
            wall, cpu = time.perf_counter() - start, cpu_self() - cpu
            if not report.ok:
                raise RuntimeError([r.error for r in report.failed][:3])
            requests = server.count()
            chain = requests / mentors  # round trips per calendar, all sequential
            in_flight = min(workers, hosts * per_host, mentors)
            ideal = math.ceil(mentors / in_flight) * chain * delay
            result[phase] = {"wall": wall, "cpu": cpu, "requests": requests,
                             "per_calendar": requests / mentors, "connections": proxy.accepted(),
                             "ideal": ideal, "ours": sum(r.requests for r in report.results)}
        syncer.close()
        store.close()

        # The daemon: edits for the first- and last-sorting mentor, and one mid-pass.
        path = tmp / f"{tag}.toml"
        path.write_text(text)
        env = {"KLASH_PROGRAMME": str(path), "KLASH_STATE_DIR": str(state),
               "KLASH_EMBEDDED_CALDAV": "false", "KLASH_SYNC_WORKERS": str(workers),
               "KLASH_DEBOUNCE": str(DEBOUNCE), "KLASH_SYNC_INTERVAL": str(interval),
               "BENCH_PW": PASSWORD}
        server.count(reset=True)
        daemon, _url = start_klash(["run"], env, log=tmp / f"{tag}.log")
        started = time.monotonic()
        try:
            wait_quiet(server, at_least=mentors)  # the start's pass: one listing per calendar
            ids = sorted(f"m{m}" for m in range(mentors))
            edits: dict[int, str] = {}

            def edit(mentor: str, label: str) -> float:
                m = int(mentor[1:])
                session = m  # session s<m> has mentors m and m+1
                edits[session] = f" ({label})"
                collection = f"/u{m}/{_slug(f'u{m}', tag)}"
                href = collection + safe_name(f"s{session}@far.klash.test")
                want = f"({label})".encode()
                path.write_text(programme(mentors, proxy.ports, tag, edits))
                saved = time.monotonic()
                while time.monotonic() - saved < 60:
                    body = get(server.base, href, f"u{m}")
                    if body is not None and want in body:
                        return time.monotonic() - saved
                    time.sleep(0.005)
                raise RuntimeError(f"edit {label} never reached the server; the daemon's log: "
                                   f"{tmp / (tag + '.log')}")

            cpu0 = cpu_of(daemon.pid)
            t0 = time.monotonic()
            result["edit_first"] = edit(ids[0], "first")
            time.sleep(0.5)
            result["edit_cpu"] = cpu_of(daemon.pid) - cpu0
            result["edit_cpu_window"] = time.monotonic() - t0
            result["edit_last"] = edit(ids[-1], "last")
            # Mid-pass: wait for the periodic pass to start, then edit a third of the way in.
            time.sleep(max(0.0, interval - (time.monotonic() - started) - 1))
            base = server.count()
            deadline = time.monotonic() + 30
            while server.count() < base + 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            pass_time = result["noop"]["wall"]
            time.sleep(pass_time / 3)
            result["edit_mid"] = edit(ids[len(ids) // 2 + 1], "mid")
            result["mid_pass_requests_before_edit"] = server.count() - base
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    finally:
        proxy.stop()
    return result


def render(results: list[dict], sweep: list[dict], command: str) -> str:
    lines = [BEGIN, "", "## Far servers", "",
             f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; command: `{command}`",
             "- Radicale in its own process behind bench/latency.py (D added to every round trip, "
             "one more D per new connection); no-op: a warm pass (the daemon's case), "
             "\"cold\" the one right after the first sync; mentors given by principal URL, spread over "
             f"{results[0]['hosts'] if results else '?'} origins; requests counted at the server, "
             "connections at the proxy; ideal = ceil(M / calendars in flight) × round trips per "
             f"calendar × D; edits: debounce {DEBOUNCE} s, target debounce + 4·D + 0.5 s.",
             "",
             "| M | D ms | first sync s (× ideal) | req/cal | conn/cal | CPU ms/cal | no-op s (× ideal) "
             "| req/cal | conn/cal (cold/warm) | CPU ms/cal | edit first s | edit last s | edit mid-pass s "
             "| target s | edit CPU s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        f, n, m = r["first"], r["noop"], r["M"]

        def ratio(x: dict) -> str:
            return f"{x['wall']:.2f} ({x['wall'] / x['ideal']:.2f}×)" if x["ideal"] else f"{x['wall']:.2f}"

        target = DEBOUNCE + 4 * r["D"] + 0.5
        lines.append(
            f"| {m} | {r['D'] * 1000:.0f} | {ratio(f)} | {f['per_calendar']:.2f} | "
            f"{f['connections'] / m:.2f} | {f['cpu'] / m * 1000:.1f} | {ratio(n)} | "
            f"{n['per_calendar']:.2f} | "
            f"{r['noop_cold']['connections'] / m:.3f} / {n['connections'] / m:.3f} | "
            f"{n['cpu'] / m * 1000:.1f} | "
            f"{r['edit_first']:.2f} | {r['edit_last']:.2f} | {r['edit_mid']:.2f} | {target:.2f} | "
            f"{r['edit_cpu']:.2f} |")
    if sweep:
        lines += ["", "Workers (no-op pass, M = {M}, D = {D} ms): ".format(
            M=sweep[0]["M"], D=int(sweep[0]["D"] * 1000)) + ", ".join(
            f"{s['workers']} → {s['wall']:.2f} s ({s['cpu']:.2f} s CPU)" for s in sweep)]
    lines += ["", END]
    return "\n".join(lines) + "\n"


def sweep_workers(server, mentors: int, delay: float, hosts: int, tmp: Path,
                  options: list[int]) -> list[dict]:
    """The no-op pass at several worker counts, on calendars a first sync made."""
    proxy = Proxy(server.port, delay, hosts)
    out = []
    try:
        tag = f"sweep-{mentors}"
        text = programme(mentors, proxy.ports, tag)
        state = tmp / tag
        store = Store(state / "state.sqlite3")
        snapshot = publish(parse(text.encode(), "far.toml"), store, now=datetime(2026, 1, 1, tzinfo=UTC),
                           base_url="http://bench")
        first = Syncer(Settings(state_dir=state, embedded_caldav=False, sync_workers=32,
                                _env_file=None), store)  # type: ignore[call-arg]
        first.run(snapshot)
        first.close()
        for workers in options:
            syncer = Syncer(Settings(state_dir=state, embedded_caldav=False, sync_workers=workers,
                                     _env_file=None), store)  # type: ignore[call-arg]
            syncer.run(snapshot)  # open the connections
            cpu, start = cpu_self(), time.perf_counter()
            syncer.run(snapshot)
            out.append({"M": mentors, "D": delay, "workers": workers,
                        "wall": time.perf_counter() - start, "cpu": cpu_self() - cpu})
            syncer.close()
        store.close()
    finally:
        proxy.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    from bench.__main__ import DavServer

    parser = argparse.ArgumentParser(prog="python -m bench.far", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mentors", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--delays", type=float, nargs="+", default=[0.0, 0.05, 0.1])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--workers", type=int, default=Settings.model_fields["sync_workers"].default)
    parser.add_argument("--sweep", type=int, nargs="*", default=[4, 8, 16, 32],
                        help="worker counts for the no-op sweep at the largest M, D = 50 ms")
    parser.add_argument("--interval", type=int, default=20,
                        help="the daemon's KLASH_SYNC_INTERVAL: when the mid-pass edit's pass starts")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    command = " ".join(["python -m bench.far", *(argv if argv is not None else sys.argv[1:])])
    os.environ["BENCH_PW"] = PASSWORD
    tmp = Path(tempfile.mkdtemp(prefix="klash-far-"))
    server = DavServer("radicale", tmp / "dav", max(args.mentors))
    results, sweep = [], []
    try:
        for mentors in args.mentors:
            for delay in args.delays:
                results.append(run_case(server, mentors, delay, args.hosts, args.workers, tmp,
                                        args.interval))
                print(json.dumps(results[-1]), flush=True)
        if args.sweep:
            sweep = sweep_workers(server, max(args.mentors), 0.05, args.hosts, tmp, args.sweep)
            print(json.dumps(sweep), flush=True)
    finally:
        server.stop()
    block = render(results, sweep, command)
    print(block)
    write_block(args.out, BEGIN, END, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
