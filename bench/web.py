"""WebSocket clients against TCP clients on one Mailslot server (issue 9, item 5).

    .venv/bin/python -m bench.web                 # both figures, about a minute
    .venv/bin/python -m bench.web --idle 5000 --rate 1000 --seconds 10

- idle: N logged-in WebSocket clients that do nothing; server RSS per connection
  (VmRSS after - before, divided by N), and the same for N TCP clients.
- latency: R messages a second offered open loop (latency counted from the
  scheduled send time) over 4 connections, 1-to-1 to random users, once over
  TCP and once over WebSocket on the same server: p50/p99 send->ack.

Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.attacks import Conn, start_server
from bench.base import percentile
from bench.procs import free_port, raise_nofile, status_kib


class WebConn:
    """One WebSocket client: frames as dicts, replies matched by id."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, url: str) -> WebConn:
        ws = await http.ws_connect(url, max_msg_size=16 * 1024 * 1024)
        welcome = json.loads((await ws.receive()).data)
        if welcome.get("event") != "welcome":
            raise RuntimeError(f"refused: {welcome}")
        return cls(ws)

    async def _read(self) -> None:
        async for message in self.ws:
            frame = json.loads(message.data)
            future = self.waiting.pop(frame["id"], None) if "id" in frame else None
            if future is not None and not future.done():
                future.set_result(frame)

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        frame["id"] = self.next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = future
        await self.ws.send_str(json.dumps(frame))
        return await future


async def idle(workdir: Path, transport: str, count: int) -> float:
    """Server RSS per idle, logged-in connection (KiB), on a server of its own."""
    http_port = free_port()
    (workdir / transport).mkdir()
    server = start_server(
        workdir / transport, "--auth", "none", "--no-limits", "--http-port", str(http_port)
    )
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

            async def connect() -> Conn | WebConn:
                if transport == "websocket":
                    return await WebConn.open(http, f"ws://127.0.0.1:{http_port}/ws")
                return await Conn.open(server.port)

            await asyncio.sleep(0.5)
            before = status_kib(server.pid)["VmRSS"]
            held: list[Conn | WebConn] = []
            for start in range(0, count, 200):
                opened = await asyncio.gather(*(connect() for _ in range(min(200, count - start))))
                await asyncio.gather(
                    *(
                        c.request({"op": "login", "user": f"i{start + i:05}", "presence": False})
                        for i, c in enumerate(opened)
                    )
                )
                held += opened
            await asyncio.sleep(1)
            after = status_kib(server.pid)["VmRSS"]
            for conn in held:
                if isinstance(conn, WebConn):
                    await conn.ws.close()
                else:
                    conn.close()
        return round((after - before) / count, 1)
    finally:
        server.stop()


async def latency(
    senders: Sequence[Conn | WebConn], rate: float, seconds: float, users: int
) -> dict[str, float]:
    """Open loop: each send is due at its scheduled time; latency counts from then."""
    interval = len(senders) / rate
    latencies: list[float] = []
    start = time.monotonic() + 0.1

    async def run(conn: Conn | WebConn, offset: float) -> None:
        due = start + offset
        while due < start + seconds:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            reply = await conn.request(
                {
                    "op": "send",
                    "mode": "one",
                    "to": [f"r{random.randrange(users):04}"],
                    "text": "x" * 100,
                }
            )
            assert reply["ok"], reply
            latencies.append((time.monotonic() - due) * 1000)
            due += interval

    await asyncio.gather(
        *(run(conn, i * interval / len(senders)) for i, conn in enumerate(senders))
    )
    return {
        "messages": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
    }


async def measure(idle_connections: int, rate: float, seconds: float) -> dict[str, Any]:
    """Both figures: send->ack over TCP and over WebSocket on one server, and idle RSS."""
    with tempfile.TemporaryDirectory(prefix="mailslot-web-") as workdir:
        http_port = free_port()
        server = start_server(
            Path(workdir), "--auth", "none", "--no-limits", "--http-port", str(http_port)
        )
        try:
            results: dict[str, Any] = {}
            recipients = []
            for start in range(0, 1000, 200):
                opened = await asyncio.gather(*(Conn.open(server.port) for _ in range(200)))
                await asyncio.gather(
                    *(
                        c.request({"op": "login", "user": f"r{start + i:04}"})
                        for i, c in enumerate(opened)
                    )
                )
                recipients += opened
            for conn in recipients:
                conn.close()
            tcp = [await Conn.open(server.port) for _ in range(4)]
            async with aiohttp.ClientSession() as http:
                web = [await WebConn.open(http, f"ws://127.0.0.1:{http_port}/ws") for _ in range(4)]
                everyone: list[Conn | WebConn] = [*tcp, *web]
                for i, sender in enumerate(everyone):
                    await sender.request({"op": "login", "user": f"s{i}", "presence": False})
                for _ in range(2):  # alternate, so neither rides on a quieter moment
                    for name, senders in (("tcp", tcp), ("websocket", web)):
                        figures = await latency(senders, rate, seconds / 2, 1000)
                        results.setdefault(f"{name}_send_ack", []).append(figures)
        finally:
            server.stop()
        results["idle_kib_per_connection"] = {
            transport: await idle(Path(workdir), transport, idle_connections)
            for transport in ("tcp", "websocket")
        }
        results["idle_connections"] = idle_connections
        return results


def markdown(results: dict[str, Any]) -> str:
    """The figures as a table for the bench report."""
    rows = [
        f"| {transport} | {results['idle_kib_per_connection'][key]} | "
        + " / ".join(f"{run['p50_ms']}" for run in results[f"{key}_send_ack"])
        + " | "
        + " / ".join(f"{run['p99_ms']}" for run in results[f"{key}_send_ack"])
        + " |"
        for transport, key in (("TCP", "tcp"), ("WebSocket", "websocket"))
    ]
    return "\n".join(
        [
            f"### Web clients (WEB): {results['idle_connections']:,} idle connections;"
            " send->ack open loop, two runs each",
            "",
            "| transport | server KiB per idle connection | p50 ms | p99 ms |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__)
    parser.add_argument("--idle", type=int, default=5000, help="idle connections (default 5000)")
    parser.add_argument("--rate", type=float, default=1000, help="messages a second (1000)")
    parser.add_argument("--seconds", type=float, default=10, help="latency phase length (10)")
    args = parser.parse_args()
    raise_nofile()
    print(json.dumps(asyncio.run(measure(args.idle, args.rate, args.seconds)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
