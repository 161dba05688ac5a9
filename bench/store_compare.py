"""The two stores side by side, at the store's interface (no server, no sockets):
N 1-to-1 messages enqueued by many concurrent callers, each awaiting its send's
commit before the next (as a session awaits it before acknowledging), then every
queue drained (fetch, ack) by many concurrent readers; then a few 1-to-all sends to
every user, one at a time (their commit latency).

Reported per store: wall time, messages/s, p50/p99 enqueue latency, commits and
messages per commit, the CPU of this process (the store's Python side; for SQLite also
its database thread) and, for PostgreSQL, the CPU of every PostgreSQL server process
(psutil, the delta over the phase), each per 1,000 messages.

    python -m bench.store_compare [--messages 100000] [--callers 1000] [--users 10000]
        [--stores sqlite,postgres] [--postgres postgresql://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from mailslot.store import NewMessage, SQLiteStore

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_processes() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "username"]):
        if process.info["name"] in ("postgres", "postmaster"):
            found.append(process)
    return found


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@dataclass
class Phase:
    name: str
    messages: int
    wall: float = 0.0
    own_cpu: float = 0.0
    postgres_cpu: float | None = None
    commits: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        per_1k = 1000 / self.messages if self.messages else 0.0
        ordered = sorted(self.latencies_ms)
        figures: dict[str, Any] = {
            "phase": self.name,
            "messages": self.messages,
            "wall_s": round(self.wall, 3),
            "msg_per_s": round(self.messages / self.wall) if self.wall else None,
            "commits": self.commits,
            "messages_per_commit": round(self.messages / self.commits, 1) if self.commits else None,
            "mailslot_cpu_s_per_1k": round(self.own_cpu * per_1k, 4),
        }
        if ordered:
            figures["p50_ms"] = round(ordered[len(ordered) // 2], 2)
            figures["p99_ms"] = round(ordered[int(len(ordered) * 0.99)], 2)
            figures["max_ms"] = round(ordered[-1], 2)
        if self.postgres_cpu is not None:
            figures["postgres_cpu_s_per_1k"] = round(self.postgres_cpu * per_1k, 4)
            figures["total_cpu_s_per_1k"] = round((self.own_cpu + self.postgres_cpu) * per_1k, 4)
        return figures


async def measure(
    phase: Phase, store: Any, watch_postgres: bool, work: Callable[[], Awaitable[None]]
) -> Phase:
    processes = postgres_processes() if watch_postgres else []
    postgres_before = cpu_seconds(processes)
    commits_before = store.commits
    own_before = time.process_time()
    started = time.perf_counter()
    await work()
    phase.wall = time.perf_counter() - started
    phase.own_cpu = time.process_time() - own_before
    phase.commits = store.commits - commits_before
    if watch_postgres:
        phase.postgres_cpu = cpu_seconds(processes) - postgres_before
    return phase


async def run_store(store: Any, args: argparse.Namespace, watch_postgres: bool) -> list[Phase]:
    await store.open()
    try:
        users = []
        for start in range(0, args.users, 1000):
            users += await asyncio.gather(
                *(
                    store.create_user(f"u{n}", f"u{n}", None, n)
                    for n in range(start, min(args.users, start + 1000))
                )
            )
        rng = random.Random(7)
        plan = [(rng.choice(users), rng.choice(users)) for _ in range(args.messages)]
        per_caller = [plan[n :: args.callers] for n in range(args.callers)]
        text = "x" * args.text_bytes
        enqueue = Phase("enqueue", args.messages)

        async def caller(sends: list[tuple[Any, Any]]) -> None:
            for sender, recipient in sends:
                started = time.perf_counter()
                await store.enqueue([NewMessage(sender.name, [recipient.id], text, 1)])
                enqueue.latencies_ms.append((time.perf_counter() - started) * 1000)

        async def send_all() -> None:
            await asyncio.gather(*(caller(sends) for sends in per_caller))

        await measure(enqueue, store, watch_postgres, send_all)
        drain = Phase("drain (fetch 100 + ack)", args.messages)
        readers = [users[n :: args.callers] for n in range(args.callers)]
        drained = 0

        async def reader(mine: list[Any]) -> None:
            nonlocal drained
            for user in mine:
                while True:
                    batch = await store.fetch(user.id, 100)
                    if batch.messages:
                        await store.ack(user.id, [m.id for m in batch.messages])
                        drained += len(batch.messages)
                    if not batch.more:
                        break

        async def drain_all() -> None:
            await asyncio.gather(*(reader(mine) for mine in readers))

        await measure(drain, store, watch_postgres, drain_all)
        if drained != args.messages or await store.waiting_counts():
            raise SystemExit(f"drained {drained} of {args.messages}; something was left over")
        broadcast = Phase(f"1-to-all to {len(users)} users", args.broadcasts)
        everyone = [user.id for user in users]

        async def broadcast_all() -> None:
            for _ in range(args.broadcasts):
                started = time.perf_counter()
                await store.enqueue([NewMessage(users[0].name, everyone, text, 1)])
                broadcast.latencies_ms.append((time.perf_counter() - started) * 1000)

        await measure(broadcast, store, watch_postgres, broadcast_all)
        return [enqueue, drain, broadcast]
    finally:
        await store.close()


async def postgres_admin(url: str, sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "command": "python -m bench.store_compare " + " ".join(sys.argv[1:]),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "stores": {},
    }
    for name in args.stores.split(","):
        if name == "sqlite":
            with tempfile.TemporaryDirectory(dir=args.tmp) as directory:
                store = SQLiteStore(Path(directory) / "mailslot.sqlite3")
                phases = await run_store(store, args, watch_postgres=False)
        elif name == "postgres":
            from mailslot.store.postgres import PostgresStore

            schema = f"mailslot_bench_{uuid.uuid4().hex[:8]}"
            await postgres_admin(args.postgres, f"CREATE SCHEMA {schema}")
            separator = "&" if "?" in args.postgres else "?"
            try:
                store = PostgresStore(f"{args.postgres}{separator}search_path={schema}")
                phases = await run_store(store, args, watch_postgres=True)
            finally:
                await postgres_admin(args.postgres, f"DROP SCHEMA {schema} CASCADE")
        else:
            raise SystemExit(f"unknown store {name!r}: sqlite or postgres")
        results["stores"][name] = [phase.summary() for phase in phases]
        for phase in phases:
            print(name, json.dumps(phase.summary()), flush=True)
    results["load_after"] = os.getloadavg()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--callers", type=int, default=1_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--text-bytes", type=int, default=100)
    parser.add_argument("--broadcasts", type=int, default=10, help="1-to-all sends, one by one")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="a database to use")
    parser.add_argument("--tmp", default=None, help="where the SQLite file goes")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print(f"load average before {results['load_before']}, after {results['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
