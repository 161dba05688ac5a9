"""A bystander's send latency while another user bursts broadcasts (issue 7, defect 10).

    python -m bench.bystander                 # through a real server, as an attacker would
    python -m bench.bystander --store         # the store alone, one job per broadcast
    PYTHONPATH=/other/src python -m bench.bystander   # the same against other code

Server mode: `mailslot server --headless --auth none` with default limits in a
temporary directory, USERS users; one connection pipelines BURST `send` mode
all in one write; meanwhile a bystander sends 1-to-1, one at a time, and each
send→reply time is kept. Store mode: the same burst handed to SQLiteStore as
BURST enqueue jobs of one broadcast each (what the session hands over once it
splits a pipelined group), with a bystander enqueue every few milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mailslot.store import NewMessage, SQLiteStore


def summary(latencies: list[float], burst_seconds: float) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"burst {burst_seconds:.2f} s; bystander sends during it: {len(ms)},"
        f" p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"
    )


async def request_lines(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frames: list[dict[str, object]]
) -> list[dict[str, object]]:
    writer.write(b"".join(json.dumps(frame).encode() + b"\n" for frame in frames))
    await writer.drain()
    replies: list[dict[str, object]] = []
    while len(replies) < len(frames):
        frame = json.loads(await reader.readline())
        if "id" in frame:  # not an event
            replies.append(frame)
    return replies


async def login(port: int, name: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**24)
    await reader.readline()  # hello
    (reply,) = await request_lines(reader, writer, [{"op": "login", "id": 1, "user": name}])
    assert reply.get("ok"), reply
    return reader, writer


async def through_server(port: int, users: int, burst: int) -> str:
    async def register(names: list[str]) -> None:
        for name in names:
            _, writer = await login(port, name)
            writer.close()

    names = [f"u{i}" for i in range(users)]
    await asyncio.gather(*(register(names[i::50]) for i in range(50)))
    bystander = await login(port, "bystander")
    burster = await login(port, "burster")
    latencies: list[float] = []
    done = asyncio.Event()

    async def keep_sending() -> None:
        number = 0
        while not done.is_set():
            number += 1
            frame = {"op": "send", "id": number, "mode": "one", "to": ["u1"], "text": "hi"}
            started = time.perf_counter()
            (reply,) = await request_lines(*bystander, [frame])
            assert reply.get("ok"), reply
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.005)

    sending = asyncio.create_task(keep_sending())
    await asyncio.sleep(0.5)
    before = len(latencies)
    started = time.perf_counter()
    frames: list[dict[str, object]] = [
        {"op": "send", "id": i, "mode": "all", "text": f"burst {i}"} for i in range(burst)
    ]
    replies = await request_lines(*burster, frames)
    burst_seconds = time.perf_counter() - started
    done.set()
    await sending
    assert all(reply.get("ok") for reply in replies), replies[:3]
    return summary(latencies[before:], burst_seconds)


def run_server(users: int, burst: int) -> str:
    with tempfile.TemporaryDirectory(prefix="bystander-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("w") as log:
            command = [sys.executable, "-m", "mailslot", "server", "--headless", "--port", "0"]
            command += ["--data-dir", f"{tmp}/data", "--auth", "none", "--log-level", "WARNING"]
            server = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            deadline = time.monotonic() + 30
            while not (found := re.search(r"listening on [\d.]+:(\d+)", log_path.read_text())):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("server did not start:\n" + log_path.read_text())
                time.sleep(0.05)
            return asyncio.run(through_server(int(found.group(1)), users, burst))
        finally:
            server.terminate()
            server.wait(30)


async def through_store(path: Path, users: int, burst: int) -> str:
    store = SQLiteStore(path)
    await store.open()
    records = await asyncio.gather(
        *(store.create_user(f"u{i}", f"u{i}", None, i) for i in range(users))
    )
    everyone = [record.id for record in records]
    latencies: list[float] = []
    done = asyncio.Event()

    async def keep_sending() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await store.enqueue([NewMessage("bystander", [everyone[1]], "hi", 1)])
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.005)

    sending = asyncio.create_task(keep_sending())
    await asyncio.sleep(0.5)
    before = len(latencies)
    started = time.perf_counter()
    await asyncio.gather(
        *(store.enqueue([NewMessage("burster", everyone, f"b{i}", 2)]) for i in range(burst))
    )
    burst_seconds = time.perf_counter() - started
    done.set()
    await sending
    await store.close()
    return summary(latencies[before:], burst_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--burst", type=int, default=199)
    parser.add_argument("--store", action="store_true", help="the store alone, no server")
    args = parser.parse_args()
    if args.store:
        with tempfile.TemporaryDirectory(prefix="bystander-") as tmp:
            print(asyncio.run(through_store(Path(tmp) / "m.sqlite3", args.users, args.burst)))
    else:
        print(run_server(args.users, args.burst))


if __name__ == "__main__":
    main()
