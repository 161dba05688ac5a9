"""Attack figures for docs/security.md (issue 7): a real server under each attack, measured.

    .venv/bin/python -m bench.attacks                  # all four, about two minutes
    .venv/bin/python -m bench.attacks fanout slowread  # some of them

- fanout: one user pipelines 199 x 1-to-all to 5,000 users, again and again for 15 s
  as fast as the server lets it; another user sends one 1-to-1 message every 20 ms
  meanwhile: p50/p99/max send->ack of the bystander. fanout-unbudgeted: the same with
  the per-user fan-out budget off (`--fanout-per-second 0`), the store's fairness alone.
- slowread: 40 connections pipeline 150 x check (limit 200) over 200 messages of 1,000
  characters and never read: server RSS growth.
- anonymous: one source address opens 10,000 sockets and never logs in; how many the
  server keeps, and how long a legitimate login from another address takes.
- guessing: one address guesses passwords for 40 names for 60 s; how many guesses the
  server verifies, against how many it refuses unverified.

Everything talks to 127.0.0.1 only; other "machines" are other 127.0.0.x source addresses.
The server runs with its default limits (`--auth password` for guessing, `--auth none`
for the rest).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bench.base import percentile
from bench.procs import ServerProc, free_port, raise_nofile, status_kib


class Conn:
    """One protocol connection from a chosen source address; replies matched by id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.next_id = 0
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, port: int, source: str = "127.0.0.1") -> Conn:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(source, 0), limit=16 * 1024 * 1024
        )
        await reader.readline()  # welcome
        return cls(reader, writer)

    async def _read(self) -> None:
        try:
            while line := await self.reader.readline():
                frame = json.loads(line)
                future = self.waiting.pop(frame.get("id", -1), None) if "id" in frame else None
                if future is not None and not future.done():
                    future.set_result(frame)
        except ConnectionError:
            pass
        for future in self.waiting.values():  # the server hung up
            if not future.done():
                future.set_exception(ConnectionResetError("closed by the server"))

    def send(self, frame: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        if self.task.done():
            raise ConnectionResetError("closed by the server")
        self.next_id += 1
        frame["id"] = self.next_id
        future = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = future
        self.writer.write(json.dumps(frame).encode() + b"\n")
        return future

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        return await self.send(frame)

    def close(self) -> None:
        self.task.cancel()
        self.writer.close()


def start_server(workdir: Path, *extra: str) -> ServerProc:
    port = free_port()
    server = ServerProc(
        "mailslot",
        [
            sys.executable,
            "-m",
            "mailslot",
            "server",
            "--headless",
            "--port",
            str(port),
            "--data-dir",
            str(workdir / "data"),
            *extra,
        ],
        port,
        workdir,
    )
    server.start()
    return server


async def create_users(port: int, names: list[str]) -> None:
    """Create names from many source addresses, as many people would: an address may
    create 60 names an hour and hold 32 connections that have not logged in."""
    per_source = 25
    for start in range(0, len(names), per_source):
        batch = names[start : start + per_source]
        number = start // per_source
        source = f"127.0.{1 + number // 250}.{1 + number % 250}"
        conns = await asyncio.gather(*(Conn.open(port, source) for _ in batch))
        replies = await asyncio.gather(
            *(
                c.request({"op": "login", "user": n, "presence": False})
                for c, n in zip(conns, batch, strict=True)
            )
        )
        assert all(r["ok"] for r in replies), replies[:3]
        for conn in conns:
            conn.close()


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 1),
        "p99": round(percentile(values, 99), 1),
        "max": round(max(values), 1),
    }


async def fanout(workdir: Path, *extra: str) -> dict[str, Any]:
    """199 x 1-to-all pipelined at once, then again whenever the server lets the sender
    (it honours retry_after), for 15 s; a bystander's 1-to-1 sends timed meanwhile."""
    server = start_server(workdir, "--auth", "none", *extra)
    try:
        port = server.port
        await create_users(port, [f"user{i:04}" for i in range(5000)])
        burster = await Conn.open(port, "127.0.9.1")
        await burster.request({"op": "login", "user": "burster", "presence": False})
        bystander = await Conn.open(port, "127.0.9.2")
        await bystander.request({"op": "login", "user": "bystander", "presence": False})
        done = asyncio.Event()

        async def probe(seconds: float = 3600) -> list[float]:
            latencies = []
            end = time.monotonic() + seconds
            while not done.is_set() and time.monotonic() < end:
                sent = time.monotonic()
                reply = await bystander.request(
                    {"op": "send", "mode": "one", "to": ["user0001"], "text": "hi"}
                )
                assert reply["ok"], reply
                latencies.append((time.monotonic() - sent) * 1000)
                await asyncio.sleep(0.02)
            return latencies

        quiet = await probe(2)
        during = asyncio.create_task(probe())
        started = time.monotonic()
        accepted = refused = rows = 0
        while time.monotonic() < started + 15:
            burst = [
                burster.send({"op": "send", "mode": "all", "text": f"burst {i}"})
                for i in range(199)
            ]
            results = await asyncio.gather(*burst)
            accepted += sum(1 for r in results if r["ok"])
            refused += sum(1 for r in results if not r["ok"])
            rows += sum(r.get("recipients", 0) for r in results)
            waits = [r["retry_after"] for r in results if r.get("error") == "rate_limited"]
            await asyncio.sleep(max(waits, default=0))
        seconds = time.monotonic() - started
        done.set()
        return {
            "attacker_sends_accepted": accepted,
            "attacker_sends_refused": refused,
            "attacker_queue_rows_per_second": round(rows / seconds),
            "bystander_quiet_ms": _summary(quiet),
            "bystander_during_attack_ms": _summary(await during),
        }
    finally:
        server.stop()


async def fanout_unbudgeted(workdir: Path) -> dict[str, Any]:
    """The same with the per-user fan-out budget off: fair batches in the store alone."""
    return await fanout(workdir, "--fanout-per-second", "0")


async def slowread(workdir: Path) -> dict[str, Any]:
    server = start_server(workdir, "--auth", "none")
    try:
        port = server.port
        names = [f"reader{i:02}" for i in range(40)]
        await create_users(port, names)
        sender = await Conn.open(port, "127.0.9.1")
        await sender.request({"op": "login", "user": "sender", "presence": False})
        for i in range(200):
            text = f"{i:04} " + "x" * 995
            reply = await sender.request({"op": "send", "mode": "many", "to": names, "text": text})
            assert reply["ok"], reply
        before = status_kib(server.pid)["VmRSS"]
        sinks = []
        check = b'{"op":"check","limit":200}\n' * 150
        for i, name in enumerate(names):
            sink = socket.socket()
            sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sink.bind((f"127.0.8.{i + 1}", 0))
            sink.connect(("127.0.0.1", port))
            sink.sendall(json.dumps({"op": "login", "user": name}).encode() + b"\n")
            sink.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sink.send(check)
            sinks.append(sink)
        await asyncio.sleep(5)
        after = status_kib(server.pid)["VmRSS"]
        for sink in sinks:
            sink.close()
        return {
            "rss_before_mib": round(before / 1024, 1),
            "rss_with_40_mib": round(after / 1024, 1),
        }
    finally:
        server.stop()


async def anonymous(workdir: Path) -> dict[str, Any]:
    server = start_server(workdir, "--auth", "none")
    try:
        port = server.port
        held = []
        for _ in range(10_000):
            sock = socket.socket()
            sock.bind(("127.0.0.2", 0))
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect_ex(("127.0.0.1", port))
            held.append(sock)
        await asyncio.sleep(3)
        kept = 0
        for sock in held:
            with contextlib.suppress(BlockingIOError, ConnectionResetError, OSError):
                data = sock.recv(4096)
                kept += data.startswith(b'{"event":"welcome"')
        started = time.monotonic()
        legit = await Conn.open(port, "127.0.0.1")
        reply = await legit.request({"op": "login", "user": "legit"})
        login_ms = (time.monotonic() - started) * 1000
        for sock in held:
            sock.close()
        return {
            "attacker_sockets": len(held),
            "kept_by_server": kept,
            "legit_login_ok": reply["ok"],
            "legit_connect_and_login_ms": round(login_ms, 1),
        }
    finally:
        server.stop()


async def guessing(workdir: Path, seconds: float = 60) -> dict[str, Any]:
    server = start_server(workdir, "--auth", "password")
    try:
        port = server.port
        names = [f"victim{i:02}" for i in range(40)]
        for name in names:
            owner = await Conn.open(port, "127.0.7.1")
            assert (await owner.request({"op": "login", "user": name, "password": "s3cret"}))["ok"]
            owner.close()
        await asyncio.sleep(0.2)
        guesser = await Conn.open(port, "127.0.0.3")
        outcomes: dict[str, int] = {}
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            try:
                reply = await guesser.request(
                    {"op": "login", "user": names[i % len(names)], "password": f"guess{i}"}
                )
            except ConnectionResetError:  # the login deadline: connect again, as attackers do
                guesser = await Conn.open(port, "127.0.0.3")
                continue
            outcomes[str(reply.get("error"))] = outcomes.get(str(reply.get("error")), 0) + 1
            i += 1
        owner = await Conn.open(port, "127.0.0.1")
        owner_in = await owner.request({"op": "login", "user": names[0], "password": "s3cret"})
        return {
            "seconds": seconds,
            "guesses_sent": i,
            "verified_wrong_password": outcomes.get("wrong_password", 0),
            "refused_unverified_rate_limited": outcomes.get("rate_limited", 0),
            "owner_from_another_address_gets_in": owner_in["ok"],
        }
    finally:
        server.stop()


PHASES: dict[str, Callable[[Path], Coroutine[Any, Any, dict[str, Any]]]] = {
    "fanout": fanout,
    "fanout-unbudgeted": fanout_unbudgeted,
    "slowread": slowread,
    "anonymous": anonymous,
    "guessing": guessing,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attacks", description=__doc__)
    parser.add_argument("phases", nargs="*", metavar="PHASE", help=", ".join(PHASES))
    args = parser.parse_args()
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase {', '.join(sorted(unknown))}; choose from {', '.join(PHASES)}")
    raise_nofile()
    results: dict[str, dict[str, Any]] = {}
    for phase in args.phases or PHASES:
        with tempfile.TemporaryDirectory(prefix=f"mailslot-{phase}-") as workdir:
            results[phase] = asyncio.run(PHASES[phase](Path(workdir)))
            print(phase, json.dumps(results[phase]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
