"""A TCP proxy that puts the benchmark's CalDAV server ``delay`` seconds of round trip away.

    python -m bench.latency UPSTREAM_PORT --delay 0.05 --hosts 100

Mentors' servers are 20–150 ms away, the benchmark's is on loopback. This relay, in its
own process, listens on ``hosts`` ports (each a different origin, as mentors on different
providers are) and forwards to the one upstream server, delaying every chunk by half the
round trip in each direction and every new connection by a whole one (the TCP
handshake). It counts the connections it accepts. It prints one JSON line:
``{"ports": [...], "control": PORT}``; a connection to the control port is answered with
the counters as JSON, and reset them when it sends ``R``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys


class Relay:
    def __init__(self, upstream: int, delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.accepted = 0
        self.by_port: dict[int, int] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = writer.get_extra_info("sockname")[1]
        self.accepted += 1
        self.by_port[port] = self.by_port.get(port, 0) + 1
        try:
            await asyncio.sleep(self.delay)  # the handshake's round trip
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            while True:
                try:
                    data = await reader.read(65536)
                except OSError:
                    data = b""
                queue.put_nowait((loop.time() + self.delay / 2, data))
                if not data:
                    return

        async def write() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(Exception):
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        await asyncio.gather(read(), write())

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        command = await reader.read(1)
        writer.write(json.dumps({"accepted": self.accepted, "by_port": self.by_port}).encode())
        if command == b"R":
            self.accepted = 0
            self.by_port = {}
        await writer.drain()
        writer.close()


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.latency")
    parser.add_argument("upstream", type=int)
    parser.add_argument("--delay", type=float, default=0.05, help="round-trip time added, seconds")
    parser.add_argument("--hosts", type=int, default=1, help="ports (origins) to listen on")
    args = parser.parse_args(argv)
    relay = Relay(args.upstream, args.delay)
    servers = [await asyncio.start_server(relay.handle, "127.0.0.1", 0, backlog=1024)
               for _ in range(args.hosts)]
    control = await asyncio.start_server(relay.control, "127.0.0.1", 0)
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    print(json.dumps({"ports": ports, "control": control.sockets[0].getsockname()[1]}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(sys.argv[1:]))
