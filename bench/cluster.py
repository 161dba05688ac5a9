"""Mailslot on PostgreSQL (issue 11): one node, and three nodes on one schema.

Two systems for ``python -m bench``, run beside the SQLite server and the peers:

- ``mailslot-pg``: one node with ``--database postgresql://…?search_path=<fresh schema>``;
  W1+W2, W3, and XPUSH with senders and recipients on that node.
- ``mailslot-pg3``: nodes a, b, c on one schema. W1+W2 with every message sent on a
  node other than its recipient's (who drains on its own node), and XPUSH: recipients
  logged in on node b, senders on node a, ``push_rate`` messages/s for
  ``push_seconds``, open loop; the figure is the time from the sender's
  acknowledgement to the recipient's ``mail`` push.

CPU is counted as the node processes plus every PostgreSQL server process (see
:class:`PostgresCpu`), reported apart, so that the cost of N nodes on their own cores
can be projected (docs/cluster.md). The schema is created at start and dropped at stop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import psutil

from bench.base import Params, Result, Unsupported, now, percentile
from bench.drivers import settle, sleep_until
from bench.harness import PhaseRun, Worker, bounded_gather, run_phase, split
from bench.payload import text_for, user_name, verify_one_to_one
from bench.procs import NOT_COUNTED, ServerProc, cpu_own_reaped, free_port
from bench.runner import _pcts, figures
from bench.sys_mailslot import (
    BATCH,
    SENDER_BASE,
    DrainWorker,
    LeftoverWorker,
    Mailslot,
    MsConn,
    Pipeline,
    Reply,
    SetupWorker,
    StoreWorker,
    send_frame,
)

POSTGRES = os.environ.get("MAILSLOT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PG_PORT = urllib.parse.urlsplit(POSTGRES).port or 5432
PUSH_BASE = 30_000  # XPUSH recipients are u30000.. (apart from every other phase's)
NODE_NAMES = "abc"
OTHERS = NOT_COUNTED + "postgres_others"
# a backend's title: "postgres: 15/main: USER DB HOST(PORT) STATE", or "[local]" for HOST(PORT)
_CLIENT = re.compile(r" (?:\S+\((\d+)\)|\[local\]) ")


class PostgresCpu:
    """CPU-s of the PostgreSQL server, from every process named ``postgres``.

    Counted: the backends of the nodes under test (found by their client ports), those of
    their hub connections (claims, presence, NOTIFY/LISTEN) apart as ``postgres_hub``;
    their store connections and PostgreSQL's own processes (postmaster, WAL writer,
    checkpointer, ...) as ``postgres``. Reported apart (``OTHERS``) and not counted: the
    backends of other clients of the same PostgreSQL, and processes that ended meanwhile,
    whose CPU lands in the postmaster's children's figure whoever they served (the nodes
    keep their connections).
    """

    def __init__(self, node_pids: list[int]) -> None:
        self.node_pids = node_pids
        self.hub_ports: dict[int, bool] = {}  # a node's client port: is it a hub connection?

    def _node_ports(self) -> dict[int, bool]:
        ports = set()
        for pid in self.node_pids:
            with contextlib.suppress(psutil.Error):
                for c in psutil.Process(pid).net_connections(kind="tcp"):
                    if c.raddr and c.raddr.port == PG_PORT:
                        ports.add(c.laddr.port)
        if ports - self.hub_ports.keys():
            # a connection of this query ends at once: not counted, whenever it is seen
            # a store's connection holds the schema's advisory lock shared (one bigint key:
            # objsubid 1) all its life; the hub's holds the claims (two int4 keys) only
            rows = asyncio.run(
                _fetch(
                    "SELECT a.client_port, NOT EXISTS (SELECT FROM pg_locks l WHERE l.pid = a.pid"
                    " AND l.locktype = 'advisory' AND l.objsubid = 1 AND l.mode = 'ShareLock'"
                    " AND l.granted) FROM pg_stat_activity a WHERE a.client_port = ANY($1)",
                    list(ports),
                )
            )
            self.hub_ports |= dict(rows)
        return {port: self.hub_ports.get(port, False) for port in ports}

    def parts(self) -> dict[str, float]:
        ours = self._node_ports()
        counted = hub = others = reaped = 0.0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/comm") as f:
                    if f.read().strip() != "postgres":
                        continue
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    title = f.read().replace(b"\0", b" ").decode(errors="replace")
                own, children = cpu_own_reaped(int(entry.name))
            except OSError:  # ended meanwhile: its CPU is in the postmaster's children's
                continue
            reaped += children
            client = _CLIENT.search(title + " ")
            port = int(client.group(1)) if client is not None and client.group(1) else None
            if client is None:
                counted += own
            elif port not in ours:
                others += own
            elif ours[port]:
                hub += own
            else:
                counted += own
        return {"postgres": counted, "postgres_hub": hub, OTHERS: others + reaped}


class NodeGroup(ServerProc):
    """Several Mailslot nodes and their PostgreSQL, measured as one server.

    RSS, threads and profiles are node a's; CPU is every node's plus PostgreSQL's.
    """

    def __init__(self, name: str, workdir: Path, nodes: list[ServerProc]) -> None:
        super().__init__(name, nodes[0].argv, nodes[0].port, workdir, nodes[0].proc)
        self.nodes = nodes
        self.postgres = PostgresCpu([n.pid for n in nodes])

    def alive(self) -> bool:
        return all(n.alive() for n in self.nodes)

    def cpu_parts(self) -> dict[str, float]:
        return {"node": sum(n.cpu() for n in self.nodes)} | self.postgres.parts()

    def stop(self, timeout: float = 30.0) -> int | None:
        codes = [n.stop(timeout) for n in self.nodes]
        return next((c for c in codes if c), codes[0])

    def log_tail(self, n: int = 20) -> str:
        return "\n".join(f"[{node.name}]\n{node.log_tail(n)}" for node in self.nodes)


async def _admin(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _fetch(sql: str, *args: Any) -> list[tuple[Any, ...]]:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES, timeout=5)
    try:
        return [tuple(row) for row in await connection.fetch(sql, *args)]
    finally:
        await connection.close()


# --- XPUSH workers --------------------------------------------------------------------


class PushRecipient(Worker):
    """Logged-in recipients that note the arrival time of every ``mail`` push, then
    (once each has had a push for each of its messages, or at the deadline) fetch,
    acknowledge and hand back what came, for verification."""

    def __init__(self, port: int, expected: dict[int, int], wait: float, conc: int) -> None:
        self.port, self.expected, self.wait, self.conc = port, expected, wait, conc
        self.pushes: dict[int, list[tuple[float, int]]] = {u: [] for u in expected}

    async def open_one(self, u: int) -> tuple[int, MsConn]:
        c = await MsConn.open(self.port)
        await c.login(user_name(u))
        pushes = self.pushes[u]

        def on_event(event: Reply) -> None:
            if event.get("event") == "mail":
                pushes.append((now(), int(event["waiting"])))

        c.on_event = on_event
        return u, c

    async def prepare(self) -> None:
        self.conns = await bounded_gather([self.open_one(u) for u in self.expected], self.conc)

    def _done(self) -> bool:
        """Every recipient had a push for each of its messages (by count, or one each)."""
        return all(
            p and max(len(p), p[-1][1]) >= self.expected[u]
            for u, p in self.pushes.items()
            if self.expected[u]
        )

    async def fetch(self, u: int, c: MsConn) -> list[tuple[int, str]]:
        got = []
        while True:
            r = await c.check(BATCH)
            msgs = r.get("messages", [])
            got += [(u, m["text"]) for m in msgs]
            if msgs:
                await c.call(
                    b'{"op":"ack","id":%d,"ids":[%s]}\n'
                    % (c.rid(), ",".join(str(m["id"]) for m in msgs).encode())
                )
            if not r.get("more"):
                return got

    async def run(self) -> Result:
        deadline = now() + self.wait
        while not self._done() and now() < deadline:
            await asyncio.sleep(0.05)
        fetched = await bounded_gather([self.fetch(u, c) for u, c in self.conns], self.conc)
        got = [m for msgs in fetched for m in msgs]
        return {"pushes": self.pushes, "got": got}

    async def close(self) -> None:
        await asyncio.gather(*(c.aclose() for _, c in self.conns))


class PushSender(Worker):
    """Open loop: each send is written at its scheduled time; hands back the monotonic
    time of each acknowledgement (the clock is the same in every process)."""

    def __init__(self, port: int, name: str, items: list[tuple[int, int]], at: list[float]) -> None:
        self.port, self.name, self.items, self.at = port, name, items, at

    async def prepare(self) -> None:
        self.c = await MsConn.open(self.port)
        await self.c.login(self.name)
        self.pipe = Pipeline(self.c, 1_000_000)
        self.frames = [
            send_frame(i + 10, user_name(u), text_for(s, u)) for i, (s, u) in enumerate(self.items)
        ]

    async def run(self) -> Result:
        pipe = self.pipe
        pipe.idle = asyncio.get_running_loop().create_future()
        t0 = now()
        due = {}
        for (s, _), frame, off in zip(self.items, self.frames, self.at, strict=True):
            await sleep_until(t0 + off)
            due[s] = t0 + off
            pipe.items.append((s, frame, t0 + off))
            pipe.fill()
            self.c.flush()
        await settle(pipe, 30)
        return {
            "acked_at": {s: due[s] + ms / 1000 for s, ms in zip(pipe.acked, pipe.lat, strict=True)},
            "lat_ms": pipe.lat,
            "n_errors": len(pipe.errors),
            "errors": pipe.errors[:5],
        }

    async def close(self) -> None:
        await self.c.aclose()


def push_latencies(
    plan: list[int], acked_at: dict[int, float], pushes: dict[int, list[tuple[float, int]]]
) -> tuple[list[tuple[float, float]], int]:
    """(ack time, ack→push ms) of every acknowledged message, and how many got no push.

    A recipient's messages come from one sender connection, so they are queued in the
    order of their seqs: a push saying ``waiting: k`` announces the first k (a push
    whose count did not grow announces the next one)."""
    mine: dict[int, list[int]] = collections.defaultdict(list)
    for seq, u in enumerate(plan):
        if seq in acked_at:
            mine[u].append(seq)
    lat: list[tuple[float, float]] = []
    missing = 0
    for u, seqs in mine.items():
        j = 0
        for t, waiting in pushes.get(u, []):
            for seq in seqs[j : min(len(seqs), max(waiting, j + 1))]:
                lat.append((acked_at[seq], (t - acked_at[seq]) * 1000))
            j = min(len(seqs), max(waiting, j + 1))
        missing += len(seqs) - j
    return lat, missing


# --- the systems ----------------------------------------------------------------------


class MailslotPg(Mailslot):
    name = "mailslot-pg"
    label = "Mailslot on PostgreSQL (1 node)"
    ack_meaning = "fsync'd (PostgreSQL COMMIT, synchronous_commit=on, group commit)"
    nodes = 1
    own_phases: tuple[str, ...] = ("W1", "W2", "W3", "XPUSH")

    def __init__(self, workdir: Path, params: Params, extra_args: list[str] | None = None) -> None:
        super().__init__(workdir, params, extra_args)
        self.schema = f"mailslot_bench_{uuid.uuid4().hex[:12]}"
        self.url = f"{POSTGRES}?search_path={self.schema}"
        self.ports: list[int] = []
        self.schema_made = False

    def version(self) -> str:
        return (
            f"{super().version()}, {self.nodes} node(s), {self._pg_version()}, schema {self.schema}"
        )

    def _pg_version(self) -> str:
        async def ask() -> str:
            import asyncpg

            c = await asyncpg.connect(POSTGRES, timeout=5)
            try:
                return str(await c.fetchval("SHOW server_version"))
            finally:
                await c.close()

        return "PostgreSQL " + asyncio.run(ask())

    def phases(self, asked: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(p for p in asked if p in self.own_phases)

    def start(self) -> None:
        try:
            asyncio.run(_admin(f"CREATE SCHEMA {self.schema}"))
        except Exception as e:
            raise Unsupported(f"no PostgreSQL at {POSTGRES}: {type(e).__name__}: {e}") from e
        self.schema_made = True
        nodes: list[ServerProc] = []
        for name in NODE_NAMES[: self.nodes]:
            port = free_port()
            argv = self.argv(port, self.workdir / f"data-{name}")
            argv += ["--database", self.url, "--node-name", name]
            node = ServerProc(f"{self.name}-{name}", argv, port, self.workdir)
            try:
                node.start()
            except RuntimeError as e:
                for n in nodes:
                    n.stop()
                raise RuntimeError(f"node {name}: {e}\n{node.log_tail()}") from e
            nodes.append(node)
        self.ports = [n.port for n in nodes]
        self.port = self.ports[0]
        self.server = NodeGroup(self.name, self.workdir, nodes)

    def stop(self) -> int | None:
        try:
            return super().stop()
        finally:
            if self.schema_made:
                asyncio.run(_admin(f"DROP SCHEMA {self.schema} CASCADE"))
                self.schema_made = False

    # every user has a home node: it logs in and drains there --------------------------
    def home(self, u: int) -> int:
        return u % self.nodes

    def _by_home(self, users: list[int]) -> list[tuple[int, list[int]]]:
        """(port, users) per generator process: the users of each node in turn."""
        procs = max(1, round(self.p.procs / self.nodes))
        return [
            (self.ports[k], part)
            for k in range(self.nodes)
            for part in split([u for u in users if self.home(u) == k], procs)
        ]

    def setup_users(self, users: list[int]) -> PhaseRun:
        ws: list[Worker] = [
            SetupWorker(port, [user_name(u) for u in part], self.p.conc)
            for port, part in self._by_home(users)
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout)

    def store(self, plan: list[int]) -> PhaseRun:
        """Sender k is on node k mod nodes; a message goes through a sender on another
        node than its recipient's (any sender with one node)."""
        n = max(self.p.senders, self.nodes)
        on = [k % self.nodes for k in range(n)]
        items: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        for seq, u in enumerate(plan):
            cand = [k for k in range(n) if self.nodes == 1 or on[k] != self.home(u)]
            items[cand[seq % len(cand)]].append((seq, u))
        ws: list[Worker] = [
            StoreWorker(self.ports[on[k]], user_name(SENDER_BASE + k), items[k], self.p.window)
            for k in range(n)
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout)

    def drain(self, users: list[int], expected: dict[int, int]) -> PhaseRun:
        ws: list[Worker] = [
            DrainWorker(port, part, self.p.conc) for port, part in self._by_home(users)
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout)

    def leftover(self, users: list[int], port: int | None = None) -> int:
        """Messages left for ``users``, who log in on their home node, or on ``port``."""
        places = self._by_home(users) if port is None else [(port, users)]
        ws: list[Worker] = [LeftoverWorker(at, part, self.p.conc) for at, part in places]
        r = run_phase(self.server, ws, timeout=self.p.timeout)
        return sum(x["leftover"] for x in r.results)

    # XPUSH --------------------------------------------------------------------------
    def more_phases(self, phases: tuple[str, ...], out: Result) -> None:
        if "XPUSH" in phases:
            self.push_phase(out)

    def push_phase(self, out: Result) -> None:
        p = self.p
        users = [PUSH_BASE + i for i in range(p.push_users)]
        total = int(p.push_rate * p.push_seconds)
        plan = [users[i % len(users)] for i in range(total)]  # plan[seq] = recipient
        senders = max(1, min(p.lat_senders, len(users)))
        # every recipient hears from one sender connection: its messages keep their order
        mine: list[list[int]] = [[] for _ in range(senders)]
        for seq, u in enumerate(plan):
            mine[(u - PUSH_BASE) % senders].append(seq)
        send_port, recv_port = self.ports[0], self.ports[min(1, self.nodes - 1)]
        wait = p.push_seconds + 10
        counts = collections.Counter(plan)
        ws: list[Worker] = [
            PushRecipient(recv_port, {u: counts[u] for u in part}, wait, p.conc)
            for part in split(users, p.procs)
        ]
        ws += [
            PushSender(
                send_port,
                user_name(SENDER_BASE + 400 + k),
                [(s, plan[s]) for s in seqs],
                [s / p.push_rate for s in seqs],
            )
            for k, seqs in enumerate(mine)
        ]
        r = run_phase(self.server, ws, timeout=p.timeout)
        acked_at: dict[int, float] = {}
        pushes: dict[int, list[tuple[float, int]]] = {}
        got: list[tuple[int, str]] = []
        ack_ms: list[float] = []
        errors = 0
        for x in r.results:
            acked_at |= x.get("acked_at", {})
            pushes |= x.get("pushes", {})
            got += x.get("got", [])
            ack_ms += x.get("lat_ms", [])
            errors += x.get("n_errors", 0)
        timed, missing = push_latencies(plan, acked_at, pushes)
        lat = [ms for _, ms in timed]
        start = min(acked_at.values(), default=0.0)
        # when the slowest pushes happened (s after the first ack): bursts or a period?
        worst = sorted(timed, key=lambda x: -x[1])[:20]
        if errors:
            refused = next(e for x in r.results for e in x.get("errors", []))
            out["errors"].append(f"XPUSH: {errors} sends refused, e.g. {refused}")
        where = "node a → node b" if self.nodes > 1 else "one node"
        out["phases"]["XPUSH"] = (
            figures(r, len(acked_at))
            | _pcts(lat, "push_ms")
            | _pcts(ack_ms, "ack_ms")
            | {
                "where": where,
                "offered_rate": p.push_rate,
                "recipients": len(users),
                "sent": total,
                "send_errors": errors,
                "pushes_missing": missing,
                "push_ms_worst_at_s": [[round(t - start, 3), round(ms, 2)] for t, ms in worst],
            }
        )
        # on the node they have just left: elsewhere the name may still be held for
        # the moment it takes node b to see the disconnect and release the claim
        left = self.leftover(users, recv_port)
        v = verify_one_to_one(plan, list(acked_at), got, left)
        if missing:
            v.notes.append(f"{missing} acknowledged messages got no push")
            out["errors"].append(f"XPUSH: {missing} acknowledged messages got no push")
        out["verify"]["XPUSH"] = v.as_dict()
        print(
            f"[{self.name}] XPUSH {len(acked_at)}/{total} at {p.push_rate}/s ({where}): "
            f"ack→push p50 {percentile(lat, 50):.2f} ms p99 {percentile(lat, 99):.2f} ms, "
            f"{missing} without a push; verify {v.as_dict()}",
            flush=True,
        )


class MailslotPg3(MailslotPg):
    name = "mailslot-pg3"
    label = "Mailslot on PostgreSQL (3 nodes, one schema)"
    nodes = 3
    own_phases = ("W1", "W2", "XPUSH")


# --- report ---------------------------------------------------------------------------


def _per_1k(ph: dict[str, Any], part: str, messages: int) -> float | None:
    cpu = [ph.get(k, {}).get("server_cpu_parts_s", {}).get(part) for k in ("W1", "W2")]
    if not messages or None in cpu:
        return None
    return sum(float(c) for c in cpu) / messages * 1000


def summary(res: dict[str, Any]) -> dict[str, Any]:
    """Per PostgreSQL system: W1+W2 CPU per 1,000 messages of the nodes and of
    PostgreSQL, their sum, and the same-run figures of NATS JetStream and SQLite."""
    by = {s["system"]: s for s in res["systems"]}

    def w12(name: str) -> float | None:
        v = by.get(name, {}).get("phases", {}).get("W1+W2", {}).get("server_cpu_per_1k")
        return float(v) if v is not None else None

    out: dict[str, Any] = {"nats": w12("nats"), "sqlite": w12("mailslot")}
    for name in (MailslotPg.name, MailslotPg3.name):
        s = by.get(name)
        if s is None or s.get("skipped"):
            continue
        ph = s["phases"]
        msgs = ph.get("W1+W2", {}).get("messages", 0)
        node, pg, hub, others = (
            _per_1k(ph, k, msgs) for k in ("node", "postgres", "postgres_hub", OTHERS)
        )
        if pg is not None and hub is not None:
            pg += hub
        out[name] = {
            "node_cpu_per_1k": node,
            "postgres_cpu_per_1k": pg,
            "postgres_hub_cpu_per_1k": hub,
            "sum_cpu_per_1k": w12(name),
            "not_counted_cpu_per_1k": others,
        }
        if node and pg:
            # N nodes, each on a core of its own, saturate a PostgreSQL on C cores once
            # N x (1,000 / node) msg/s reach C x (1,000 / pg) msg/s
            out[name]["nodes_per_postgres_core"] = round(node / pg, 2)
    return out


def markdown(res: dict[str, Any]) -> str:
    from bench.report import _f, _loss

    rows = [
        "| system | W1 msg/s | W2 msg/s | W1+W2 CPU-s /1k: nodes | PostgreSQL (of which hub "
        "connections) | sum | "
        "NATS (same run) | sum ÷ NATS | loss W1+W2 | W3 commit ms p50 / max | loss W3 | "
        "XPUSH | XPUSH ack→push ms p50 / p99 | XPUSH send→ack ms p50 / p99 | loss XPUSH |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summ = summary(res)
    notes = []
    for s in res["systems"]:
        if s["system"] not in (MailslotPg.name, MailslotPg3.name):
            continue
        if s.get("skipped"):
            rows.append(f"| {s['system']} | skipped: {s['skipped']} |" + " |" * 13)
            continue
        ph, ver, sm = s["phases"], s.get("verify", {}), summ.get(s["system"], {})
        w1, w2, w3, xp = (ph.get(k, {}) for k in ("W1", "W2", "W3-send", "XPUSH"))
        total, nats = sm.get("sum_cpu_per_1k"), summ["nats"]
        rows.append(
            f"| {s['system']}{' ⚠' if s.get('errors') else ''} | {_f(w1.get('msgs_per_s'), 0)} | "
            f"{_f(w2.get('msgs_per_s'), 0)} | {_f(sm.get('node_cpu_per_1k'), 4)} | "
            f"{_f(sm.get('postgres_cpu_per_1k'), 4)} "
            f"({_f(sm.get('postgres_hub_cpu_per_1k'), 4)}) | "
            f"{_f(total, 4)} | {_f(nats, 4)} | "
            f"{f'{total / nats:.2f}×' if total and nats else '–'} | {_loss(ver.get('W1W2'))} | "
            f"{_f(w3.get('commit_ms_p50'))} / {_f(w3.get('commit_ms_max'))} | "
            f"{_loss(ver.get('W3'))} | {xp.get('where', '–')} | "
            f"{_f(xp.get('push_ms_p50'))} / {_f(xp.get('push_ms_p99'))} | "
            f"{_f(xp.get('ack_ms_p50'))} / {_f(xp.get('ack_ms_p99'))} | "
            f"{_loss(ver.get('XPUSH'))} |"
        )
        if sm.get("not_counted_cpu_per_1k"):
            notes.append(
                f"- {s['system']}: not counted: other clients of the same PostgreSQL, and its "
                f"processes that ended meanwhile, {sm['not_counted_cpu_per_1k']:.4f} CPU-s /1k "
                "(W1+W2)"
            )
        if sm.get("nodes_per_postgres_core"):
            notes.append(
                f"- {s['system']}: a node spends {sm['node_cpu_per_1k']:.4f} CPU-s and "
                f"PostgreSQL {sm['postgres_cpu_per_1k']:.4f} per 1,000 messages (W1+W2): "
                f"{sm['nodes_per_postgres_core']} nodes, each on a core of its own, keep one "
                "PostgreSQL core busy"
            )
    if len(rows) == 2:
        return ""
    return "\n".join(
        [
            "### Cluster mode (PostgreSQL): CPU = nodes + PostgreSQL",
            "",
            *rows,
            "",
            *notes,
            "",
            *split_table(res),
            "",
        ]
    )


def split_table(res: dict[str, Any]) -> list[str]:
    """Each phase's CPU of the nodes and of PostgreSQL, per 1,000 messages (per 1,000
    users for a setup, per broadcast for W3-send)."""
    from bench.report import _f

    rows = [
        "| system | phase | messages | nodes CPU-s | PostgreSQL CPU-s (of which hub "
        "connections) | nodes /1k | PostgreSQL /1k | sum /1k | not counted CPU-s (other "
        "clients) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in res["systems"]:
        if s["system"] not in (MailslotPg.name, MailslotPg3.name) or s.get("skipped"):
            continue
        for phase, f in s["phases"].items():
            parts = f.get("server_cpu_parts_s")
            n = f.get("messages") or f.get("users")
            if not parts or not n:
                continue
            node, hub = parts["node"], parts.get("postgres_hub", 0.0)
            pg = parts["postgres"] + hub
            rows.append(
                f"| {s['system']} | {phase} | {_f(n)} | {_f(node)} | {_f(pg)} ({_f(hub)}) | "
                f"{_f(node / n * 1000, 4)} | {_f(pg / n * 1000, 4)} | "
                f"{_f((node + pg) / n * 1000, 4)} | {_f(parts.get(OTHERS))} |"
            )
    return rows if len(rows) > 2 else []
