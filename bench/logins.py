"""Benchmark phase "wrong passwords": what guessers on /dav/ cost the feed and /healthz.

    python -m bench.logins [--clients 40] [--rate 5] [--seconds 20] [--one-address]

``klash-sync run`` (a real daemon process, the embedded CalDAV server at /dav/, the shipped
programme) is measured twice for ``seconds`` each: quiet, then while ``clients`` clients
each send ``rate`` wrong passwords a second to /dav/ on a kept-alive connection. Each
client connects from an address of its own (127.0.5.N: all of 127.0.0.0/8 is loopback),
as distinct attackers would; ``--one-address`` sends them all from 127.0.0.1. Throughout,
one prober fetches the programme feed and /healthz ten times a second each, each on a new
connection as a subscriber's app would, and records every latency. Every loop is bounded in
count and time. The attackers run in a process of their own: as threads of the prober's
process they held its GIL, and the prober's own wait for it (up to Python's 5 ms switch
interval) was counted as the service's latency. That process runs at nice 19: attackers
on the network spend their own CPU, and on this two-core machine a load generator at full
priority takes a core from the server it measures.

The table replaces the "wrong passwords" block of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.__main__ import _wait_http, start_klash  # noqa: E402
from bench.results import write_block  # noqa: E402

BEGIN = "<!-- wrong passwords: begin -->"
END = "<!-- wrong passwords: end -->"
FEED = "/feeds/programme.ics"
TARGET = "/dav/milja-kopsi/"


def _get(port: int, path: str) -> tuple[int, float]:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.perf_counter() - start
    finally:
        conn.close()


def probe(port: int, seconds: float, stop: Any) -> dict[str, list[float]]:
    """The feed and /healthz each every 0.1 s (/healthz 50 ms after the feed), for
    ``seconds`` at most."""
    found: dict[str, list[float]] = {"feed": [], "healthz": []}
    start = time.monotonic()
    deadline = start + seconds
    for tick in range(int(seconds * 10) + 1):
        for path, key, offset in ((FEED, "feed", 0.0), ("/healthz", "healthz", 0.05)):
            time.sleep(max(0.0, start + tick / 10 + offset - time.monotonic()))
            if stop.is_set() or time.monotonic() > deadline:
                return found
            status, took = _get(port, path)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}")
            found[key].append(took)
    return found


def attack(port: int, clients: int, rate: float, seconds: float, one_address: bool,
           stop: Any) -> Counter[str]:
    """``clients`` threads, each ``rate`` wrong passwords a second, ``rate * seconds`` at most."""
    statuses: Counter[str] = Counter()
    lock = threading.Lock()

    def client(n: int) -> None:
        source = ("127.0.0.1" if one_address else f"127.0.{5 + n // 250}.{n % 250 + 1}", 0)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=source)
        local: Counter[str] = Counter()
        start = time.monotonic()
        for k in range(int(rate * seconds)):
            if stop.is_set():
                break
            time.sleep(max(0.0, start + k / rate - time.monotonic()))
            token = base64.b64encode(f"milja-kopsi:guess-{n}-{k}".encode()).decode()
            try:
                conn.request("PROPFIND", TARGET, headers={"Authorization": "Basic " + token, "Depth": "0"})
                resp = conn.getresponse()
                resp.read()
                local[str(resp.status)] += 1
            except (OSError, http.client.HTTPException) as e:
                local[type(e).__name__] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=source)
        conn.close()
        with lock:
            statuses.update(local)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    return statuses


def _attack_process(port: int, clients: int, rate: float, seconds: float, one_address: bool,
                    stop: Any, out: Any) -> None:
    # Real attackers spend their own CPU, not ours: at nice 19 this process only gets what
    # the daemon and the prober leave over. Whether it still sent at the full rate is in
    # the table (the answers it got add up to what it sent).
    os.nice(19)
    out.put(dict(attack(port, clients, rate, seconds, one_address, stop)))


def phase(port: int, seconds: float, clients: int, rate: float, one_address: bool) -> dict:
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    statuses: Counter[str] = Counter()
    attacker, out = None, context.Queue()
    if clients:
        attacker = context.Process(target=_attack_process, daemon=True,
                                   args=(port, clients, rate, seconds, one_address, stop, out))
        attacker.start()
    try:
        found = probe(port, seconds, stop)
    finally:
        stop.set()
        if attacker is not None:
            statuses.update(out.get(timeout=seconds + 180))
            attacker.join(30)
    feed, health = found["feed"], found["healthz"]
    return {
        "feed_median_ms": statistics.median(feed) * 1000,
        "feed_p95_ms": sorted(feed)[int(len(feed) * 0.95)] * 1000,
        "healthz_worst_ms": max(health) * 1000,
        "probes": len(feed) + len(health),
        "attack": dict(sorted(statuses.items())),
    }


def render(quiet: dict, attacked: dict, args: argparse.Namespace, command: str) -> str:
    def ratio(key: str) -> str:
        return f"{attacked[key] / quiet[key]:.2f}×" if quiet[key] else "–"

    where = "all from 127.0.0.1" if args.one_address else "each from an address of its own"
    lines = [
        BEGIN, "", "## Wrong passwords", "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; command: `{command}`",
        f"- `klash-sync run` in its own process, embedded CalDAV server at /dav/; {args.clients} "
        f"clients × {args.rate:g} wrong passwords a second for {args.seconds:g} s ({where}); "
        "the feed and /healthz each probed every 0.1 s, each on a new connection; the attackers "
        "in a process of their own at nice 19 (their CPU is not the server's)",
        "",
        "| | without the attack | with it | with / without | target |",
        "|---|---:|---:|---:|---|",
        f"| feed median, ms | {quiet['feed_median_ms']:.1f} | {attacked['feed_median_ms']:.1f} | "
        f"{ratio('feed_median_ms')} | ≤ 2× |",
        f"| feed 95th percentile, ms | {quiet['feed_p95_ms']:.1f} | {attacked['feed_p95_ms']:.1f} | "
        f"{ratio('feed_p95_ms')} | |",
        f"| /healthz worst, ms | {quiet['healthz_worst_ms']:.1f} | {attacked['healthz_worst_ms']:.1f} | "
        f"{ratio('healthz_worst_ms')} | ≤ 2× |",
        "",
        f"Answers to the attackers: {json.dumps(attacked['attack'])} "
        f"({sum(attacked['attack'].values())} of the {int(args.clients * args.rate * args.seconds)} "
        "the attack was to send).",
        "", END,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.logins", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--rate", type=float, default=5.0, help="wrong passwords a second per client")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--one-address", action="store_true", help="every client from 127.0.0.1")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    command = " ".join(["python -m bench.logins", *(argv if argv is not None else sys.argv[1:])])
    tmp = Path(tempfile.mkdtemp(prefix="klash-logins-"))
    env = {"KLASH_PROGRAMME": str(ROOT / "config" / "programme.toml"), "KLASH_STATE_DIR": str(tmp),
           "KLASH_EMBEDDED_CALDAV": "true"}
    full = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")} | env
    subprocess.run([sys.executable, "-m", "klash_sync", "accounts"], cwd=ROOT, env=full,
                   capture_output=True, timeout=300, check=True)  # the mentors' logins exist
    daemon, url = start_klash(["run"], env)
    try:
        _wait_http(url + "/healthz")
        _wait_http(url + FEED)
        time.sleep(2)  # the first sync into the embedded calendars is done
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        quiet = phase(port, args.seconds, 0, args.rate, args.one_address)
        attacked = phase(port, args.seconds, args.clients, args.rate, args.one_address)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    block = render(quiet, attacked, args, command)
    print(block)
    write_block(args.out, BEGIN, END, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
