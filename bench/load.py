"""A small HTTP load generator, run as its own process: `python -m bench.load URL PATH`.

Keep-alive connections, one per worker thread; a share of the requests are conditional
(If-None-Match with the ETag of a first GET). Prints one JSON object: counts by status,
errors, wall time and requests per second. Bounded by --requests and --seconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit


def run(url: str, path: str, *, requests: int, conditional: float, workers: int,
        seconds: float, gzip: bool = False) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    probe = http.client.HTTPConnection(host, port, timeout=10)
    probe.request("GET", path)
    first = probe.getresponse()
    first.read()
    etag = first.getheader("ETag") or ""
    probe.close()

    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.monotonic() + seconds
    every = int(1 / conditional) if conditional > 0 else 0

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        local: Counter[int] = Counter()
        local_errors: Counter[str] = Counter()
        while time.monotonic() < deadline:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            headers = {"Accept-Encoding": "gzip"} if gzip else {}
            if every and n % every == 0 and etag:
                headers["If-None-Match"] = etag if not gzip else etag[:-1] + '-gz"'
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                local[resp.status] += 1
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=10)
            except (OSError, http.client.HTTPException) as e:
                local_errors[type(e).__name__] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.close()
        with lock:
            statuses.update(local)
            errors.update(local_errors)

    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    total = sum(statuses.values())
    return {
        "requests": total,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": dict(errors),
        "non_2xx_3xx": sum(v for k, v in statuses.items() if not 200 <= k < 400),
        "share_304": round(statuses.get(304, 0) / total, 4) if total else 0.0,
        "seconds": round(wall, 3),
        "rps": round(total / wall, 1) if wall else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url", help="base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("path", help="path to request, e.g. /feeds/programme.ics")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--conditional", type=float, default=0.5, help="share of conditional GETs")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120, help="stop after this long at most")
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.url, args.path, requests=args.requests, conditional=args.conditional,
                 workers=args.workers, seconds=args.seconds, gzip=args.gzip)
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
