"""Mailslot through its wire protocol (newline-delimited JSON), spoken directly.

Every connection is an asyncio.Protocol that pipelines requests and matches
replies in order (the server answers a connection's requests in order). The
load generators log in with ``presence: false`` so idle benchmark clients do
not receive online/offline events for each other (MQTT and NATS clients get
no presence either).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from bench.base import Params, Result, System, now
from bench.drivers import HOST, BufferedConn, HoldWorker, settle, sleep_until
from bench.harness import PhaseRun, Worker, bounded_gather, run_phase, split
from bench.payload import text_for, user_name
from bench.procs import ServerProc, free_port
from bench.sys_mqtt import latency_workers

RESULTS = Path(__file__).resolve().parent / "results"

BATCH = 200
SENDER_BASE = 990_000  # users that send: u990000.. (kept apart from recipients)
_decode = msgspec.json.Decoder().decode
Reply = dict[str, Any]


def login_frame(rid: int, name: str) -> bytes:
    return b'{"op":"login","id":%d,"user":"%s","presence":false}\n' % (rid, name.encode())


def send_frame(rid: int, to: str, text: str) -> bytes:
    return b'{"op":"send","id":%d,"mode":"one","to":["%s"],"text":"%s"}\n' % (
        rid,
        to.encode(),
        text.encode(),
    )


class MsConn(BufferedConn):
    def __init__(self) -> None:
        super().__init__()
        self.buf = b""
        self.waiters: deque[Callable[[Reply], None]] = deque()
        self.after_read: Callable[[], None] | None = None
        self.on_event: Callable[[Reply], None] | None = None
        self.next_id = 1
        self.events = 0

    def connection_lost(self, exc: Exception | None) -> None:
        while self.waiters:
            self.waiters.popleft()({"ok": False, "error": "connection_lost"})
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if b"\n" not in data:
            self.buf = buf
            return
        *lines, self.buf = buf.split(b"\n")
        for line in lines:
            if not line:
                continue
            obj = _decode(line)
            if "ok" in obj:
                if self.waiters:
                    self.waiters.popleft()(obj)
            else:
                self.events += 1
                if self.on_event is not None:
                    self.on_event(obj)
        if self.after_read is not None:
            self.after_read()
        self.flush()

    def rid(self) -> int:
        self.next_id += 1
        return self.next_id

    def queue(self, frame: bytes, cb: Callable[[Reply], None]) -> None:
        self.waiters.append(cb)
        self.out.append(frame)

    def request(self, frame: bytes) -> asyncio.Future[Reply]:
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def done(r: Reply) -> None:
            if not fut.done():
                fut.set_result(r)

        self.queue(frame, done)
        return fut

    async def call(self, frame: bytes) -> Reply:
        f = self.request(frame)
        self.flush()
        return await f

    async def login(self, name: str) -> Reply:
        r = await self.call(login_frame(self.rid(), name))
        if not r.get("ok"):
            raise RuntimeError(f"login {name} failed: {r}")
        return r

    async def check(self, limit: int = BATCH) -> Reply:
        return await self.call(b'{"op":"check","id":%d,"limit":%d}\n' % (self.rid(), limit))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    async def aclose(self) -> None:
        self.close()
        await self.wait_closed()


class Pipeline:
    """A window of `send` requests in flight on one logged-in connection.

    Latency counts from an item's scheduled time, or from when it is written
    (``stamp_on_send``, for closed loops).
    """

    def __init__(self, conn: MsConn, window: int, stamp_on_send: bool = False) -> None:
        self.c = conn
        self.window = window
        self.stamp_on_send = stamp_on_send
        self.inflight = 0
        self.items: deque[tuple[int, bytes, float]] = deque()
        self.acked: list[int] = []
        self.errors: list[Reply] = []
        self.lat: list[float] = []
        self.recipients: list[int] = []
        self.idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        conn.after_read = self.fill

    def fill(self) -> None:
        c = self.c
        while self.items and self.inflight < self.window:
            seq, frame, t = self.items.popleft()
            if self.stamp_on_send:
                t = now()
            self.inflight += 1
            c.queue(frame, lambda r, seq=seq, t=t: self.reply(r, seq, t))
        if not self.items and not self.inflight and not self.idle.done():
            self.idle.set_result(None)

    def reply(self, r: Reply, seq: int, t: float) -> None:
        self.inflight -= 1
        if r.get("ok"):
            self.acked.append(seq)
            self.recipients.append(r.get("recipients", 0))
            if t:
                self.lat.append((now() - t) * 1000)
        else:
            self.errors.append(r)

    async def run(self, timeout: float = 600) -> None:
        self.idle = asyncio.get_running_loop().create_future()
        self.fill()
        self.c.flush()
        await asyncio.wait_for(self.idle, timeout)


# --- workers ---------------------------------------------------------------------------


class SetupWorker(Worker):
    def __init__(self, port: int, names: list[str], conc: int) -> None:
        self.port, self.names, self.conc = port, names, conc
        self.created = 0

    async def one(self, name: str) -> None:
        c = await MsConn.open(self.port)
        r = await c.login(name)
        self.created += bool(r.get("created"))
        await c.aclose()

    async def run(self) -> Result:
        await bounded_gather([self.one(n) for n in self.names], self.conc)
        return {"n": len(self.names), "created": self.created}


class StoreWorker(Worker):
    def __init__(self, port: int, name: str, items: list[tuple[int, int]], window: int) -> None:
        self.port, self.name, self.items, self.window = port, name, items, window

    async def prepare(self) -> None:
        self.c = await MsConn.open(self.port)
        await self.c.login(self.name)
        self.pipe = Pipeline(self.c, self.window)
        self.pipe.items.extend(
            (s, send_frame(i + 10, user_name(u), text_for(s, u)), 0.0)
            for i, (s, u) in enumerate(self.items)
        )

    async def run(self) -> Result:
        await self.pipe.run()
        return {
            "acked": self.pipe.acked,
            "errors": self.pipe.errors[:5],
            "n_errors": len(self.pipe.errors),
        }

    async def close(self) -> None:
        await self.c.aclose()


class DrainWorker(Worker):
    """Log in, `check` (again while `more`), `ack` the ids, log out."""

    def __init__(self, port: int, users: list[int], conc: int) -> None:
        self.port, self.users, self.conc = port, users, conc
        self.got: list[tuple[int, str]] = []
        self.errors: list[Reply] = []
        self.login_ms: list[float] = []
        self.session_ms: list[float] = []

    async def one(self, u: int) -> None:
        t0 = now()
        c = await MsConn.open(self.port)
        await c.login(user_name(u))
        self.login_ms.append((now() - t0) * 1000)
        r = await c.check()
        while r.get("ok"):
            msgs = r["messages"]
            if not msgs:
                break
            for m in msgs:
                self.got.append((u, m["text"]))
            ack = b'{"op":"ack","id":%d,"ids":%s}\n' % (
                c.rid(),
                msgspec.json.encode([m["id"] for m in msgs]),
            )
            fa = c.request(ack)
            if r["more"]:
                fc = c.request(b'{"op":"check","id":%d,"limit":%d}\n' % (c.rid(), BATCH))
                c.flush()
                a = await fa
                r = await fc
            else:
                c.flush()
                a = await fa
                r = {"ok": False, "done": True}
            if not a.get("ok"):
                self.errors.append(a)
        if not r.get("done") and not r.get("ok"):
            self.errors.append(r)
        self.session_ms.append((now() - t0) * 1000)
        await c.aclose()

    async def run(self) -> Result:
        await bounded_gather([self.one(u) for u in self.users], self.conc)
        return {
            "got": self.got,
            "errors": self.errors[:5],
            "n_errors": len(self.errors),
            "login_ms": self.login_ms,
            "session_ms": self.session_ms,
        }


class LeftoverWorker(Worker):
    def __init__(self, port: int, users: list[int], conc: int) -> None:
        self.port, self.users, self.conc = port, users, conc

    async def one(self, u: int) -> int:
        c = await MsConn.open(self.port)
        r = await c.login(user_name(u))
        chk = await c.check()
        await c.aclose()
        return max(int(r.get("waiting", 0)), len(chk.get("messages", [])))

    async def run(self) -> Result:
        left = await bounded_gather([self.one(u) for u in self.users], self.conc)
        return {"leftover": sum(left)}


class BcastWorker(Worker):
    def __init__(self, port: int, seqs: list[int]) -> None:
        self.port, self.seqs = port, seqs
        self.name = user_name(SENDER_BASE + 100)

    async def prepare(self) -> None:
        self.c = await MsConn.open(self.port)
        await self.c.login(self.name)

    async def run(self) -> Result:
        lat, acked, recips, errors = [], [], [], []
        for s in self.seqs:
            t = now()
            r = await self.c.call(
                b'{"op":"send","id":%d,"mode":"all","text":"%s"}\n'
                % (self.c.rid(), text_for(s, 999_999).encode())
            )
            lat.append((now() - t) * 1000)
            if r.get("ok"):
                acked.append(s)
                recips.append(r["recipients"])
            else:
                errors.append(r)
        users = await self.c.call(b'{"op":"users","id":%d}\n' % self.c.rid())
        names = [u["name"] for u in users.get("users", [])]
        idx = sorted(int(n[1:]) for n in names if n != self.name and n[1:].isdigit())
        return {
            "lat_ms": lat,
            "acked": acked,
            "recipients": max(recips, default=-1),
            "recipient_idx": idx,
            "errors": errors,
        }

    async def close(self) -> None:
        await self.c.aclose()


class LoopWorker(Worker):
    """W6/W6p: logged-in connections that each keep ``inflight`` sends outstanding."""

    def __init__(
        self, port: int, senders: list[tuple[str, list[tuple[int, int]]]], inflight: int, conc: int
    ) -> None:
        self.port, self.senders, self.inflight, self.conc = port, senders, inflight, conc

    async def open_one(self, name: str, items: list[tuple[int, int]]) -> Pipeline:
        c = await MsConn.open(self.port)
        await c.login(name)
        c.write_each = True
        pipe = Pipeline(c, self.inflight, stamp_on_send=True)
        pipe.items.extend(
            (s, send_frame(i + 10, user_name(u), text_for(s, u)), 0.0)
            for i, (s, u) in enumerate(items)
        )
        return pipe

    async def prepare(self) -> None:
        self.pipes: list[Pipeline] = await bounded_gather(
            [self.open_one(n, items) for n, items in self.senders], self.conc
        )

    async def run(self) -> Result:
        await asyncio.gather(*(p.run() for p in self.pipes))
        errors = [e for p in self.pipes for e in p.errors]
        return {
            "acked": [s for p in self.pipes for s in p.acked],
            "lat_ms": [x for p in self.pipes for x in p.lat],
            "errors": errors[:5],
            "n_errors": len(errors),
        }

    async def close(self) -> None:
        await asyncio.gather(*(p.c.aclose() for p in self.pipes))


class ConnWorker(HoldWorker[MsConn]):
    async def connect(self, u: int) -> MsConn:
        c = await MsConn.open(self.port)
        await c.login(user_name(u))
        return c

    def drop(self, c: MsConn) -> None:
        c.close()


class LatencyWorker(Worker):
    def __init__(
        self, port: int, name: str, plan: list[tuple[int, int]], at: list[float], window: int
    ) -> None:
        self.port, self.plan, self.at, self.window = port, plan, at, window
        k = int(name[3:])
        self.name = user_name(SENDER_BASE + 200 + k)
        self.checker = k == 0

    async def prepare(self) -> None:
        self.c = await MsConn.open(self.port)
        await self.c.login(self.name)
        self.pipe = Pipeline(self.c, 1_000_000)
        self.frames = [
            send_frame(i + 10, user_name(u), text_for(s, u)) for i, (s, u) in enumerate(self.plan)
        ]
        if self.checker:
            self.cc = await MsConn.open(self.port)
            await self.cc.login(user_name(SENDER_BASE + 300))

    async def checks(self, stop: asyncio.Event, rate: float) -> list[float]:
        out = []
        while not stop.is_set():
            t = now()
            await self.cc.check()
            out.append((now() - t) * 1000)
            await asyncio.sleep(max(0.0, 1 / rate - (now() - t)))
        return out

    async def run(self) -> Result:
        stop = asyncio.Event()
        chk = asyncio.create_task(self.checks(stop, 100.0)) if self.checker else None
        pipe = self.pipe
        pipe.idle = asyncio.get_running_loop().create_future()
        t0 = now()
        for (s, _), frame, off in zip(self.plan, self.frames, self.at, strict=True):
            await sleep_until(t0 + off)
            pipe.items.append((s, frame, t0 + off))
            pipe.fill()
            self.c.flush()
        await settle(pipe, 30)
        stop.set()
        check_ms = await chk if chk is not None else []
        return {
            "lat_ms": pipe.lat,
            "check_ms": check_ms,
            "sent": len(self.plan),
            "acked": len(pipe.acked),
            "n_errors": len(pipe.errors),
        }

    async def close(self) -> None:
        await self.c.aclose()
        if self.checker:
            await self.cc.aclose()


# --- system ----------------------------------------------------------------------------


class Mailslot(System):
    name = "mailslot"
    label = "Mailslot (SQLite WAL, synchronous=FULL, group commit)"
    ack_meaning = "fsync'd (SQLite COMMIT, synchronous=FULL, group commit)"
    broadcast_note = "one `send` with mode all (text stored once, one queue row per user)"
    conn_note = "TCP + `login` with presence:false"
    check_note = "`check` on an empty queue"

    def __init__(
        self,
        workdir: Path,
        params: Params,
        extra_args: list[str] | None = None,
        profile: str = "none",
        profile_phase: str | None = None,
    ) -> None:
        super().__init__(workdir, params)
        self.extra_args = extra_args or []
        self.profile = profile
        self.profile_phase = profile_phase
        self._recips: list[int] = []
        self.port = 0
        self.spy: subprocess.Popen[bytes] | None = None

    def version(self) -> str:
        try:
            import mailslot

            return f"mailslot {getattr(mailslot, '__version__', '?')}"
        except ImportError:
            return "mailslot ?"

    def argv(self, port: int, data: Path) -> list[str]:
        """The command line of a server listening on ``port``, its files in ``data``."""
        profile = ["-m", "cProfile", "-o", str(self.workdir / "mailslot.prof")]
        return [
            sys.executable,
            *(profile if self.profile == "cprofile" else []),
            "-m",
            "mailslot",
            "server",
            "--headless",
            "--host",
            HOST,
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--auth",
            "none",
            "--no-limits",
            *self.extra_args,
        ]

    def start(self) -> None:
        self.port = free_port()
        argv = self.argv(self.port, self.workdir / "data")
        self.server = ServerProc(self.name, argv, self.port, self.workdir)
        self.server.start()
        if self.profile == "py-spy" and self.profile_phase is None:
            self._record("")

    def _record(self, phase: str) -> None:
        """Start py-spy on the server: raw stacks of all threads, 200 samples/s; for one
        phase 1,000/s with idle samples too, so that the stacks account for wall time,
        not only for time on a CPU. (--native, for SQLite's C frames, would stop the
        server at every sample.)"""
        assert self.server is not None
        detail = ["--rate", "1000", "--idle"] if phase else ["--rate", "200"]
        spy = Path(sys.executable).with_name("py-spy")
        out = RESULTS / f"mailslot-py-spy-{phase}{'-' if phase else ''}{self.server.pid}.txt"
        RESULTS.mkdir(exist_ok=True)
        self.spy = subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(self.server.pid),
                "--format",
                "raw",
                "--threads",
                *detail,
                "--nonblocking",
                "-o",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print(f"[mailslot] py-spy recording to {out}", flush=True)
        if phase:
            time.sleep(0.5)  # let py-spy attach before the measured part starts

    def _end_record(self) -> None:
        """Stop py-spy (it writes its file on SIGINT, or when the server exits)."""
        if self.spy is None:
            return
        if self.server is not None and self.server.alive():
            self.spy.send_signal(signal.SIGINT)
        try:
            self.spy.wait(30)
        except subprocess.TimeoutExpired:
            self.spy.send_signal(signal.SIGINT)
            self.spy.wait(10)
        self.spy = None

    def _phase(self, name: str, run: Callable[[], PhaseRun]) -> PhaseRun:
        """Run a phase; with ``--profile py-spy --profile-phase NAME``, py-spy records
        exactly its measured part."""
        if self.profile != "py-spy" or self.profile_phase != name or self.server is None:
            return run()

        def toggle(start: bool) -> None:
            if start:
                self._record(name)
            else:
                self._end_record()

        self.server.on_measure = toggle
        try:
            return run()
        finally:
            self.server.on_measure = None

    def stop(self) -> int | None:
        rc = super().stop()
        self._end_record()
        return rc

    def _users(self, users: list[int]) -> list[list[int]]:
        return split(users, self.p.procs)

    def setup_users(self, users: list[int]) -> PhaseRun:
        names = [user_name(u) for u in users]
        ws: list[Worker] = [
            SetupWorker(self.port, part, self.p.conc) for part in split(names, self.p.procs)
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout)

    def store(self, plan: list[int]) -> PhaseRun:
        items = list(enumerate(plan))
        ws: list[Worker] = [
            StoreWorker(self.port, user_name(SENDER_BASE + i), part, self.p.window)
            for i, part in enumerate(split(items, self.p.senders))
        ]
        return self._phase("W1", lambda: run_phase(self.server, ws, timeout=self.p.timeout))

    def drain(self, users: list[int], expected: dict[int, int]) -> PhaseRun:
        ws: list[Worker] = [
            DrainWorker(self.port, part, self.p.conc) for part in self._users(users)
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout)

    def leftover(self, users: list[int]) -> int:
        ws: list[Worker] = [
            LeftoverWorker(self.port, part, self.p.conc) for part in self._users(users)
        ]
        r = run_phase(self.server, ws, timeout=self.p.timeout)
        return sum(x["leftover"] for x in r.results)

    def bcast_setup(self, users: list[int]) -> PhaseRun:
        return self.setup_users(users)

    def bcast_send(self, seqs: list[int]) -> PhaseRun:
        r = run_phase(self.server, [BcastWorker(self.port, seqs)], timeout=self.p.timeout)
        self._recips = r.results[0]["recipient_idx"]
        return r

    def bcast_recipients(self, users: list[int]) -> list[int]:
        return self._recips

    def connections(self, n: int) -> PhaseRun:
        ws: list[Worker] = [
            ConnWorker(self.port, part, self.p.conc) for part in self._users(list(range(n)))
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout, hold=True)

    def latency(self, users: list[int]) -> PhaseRun:
        ws = latency_workers(self, users, LatencyWorker)
        return self._phase("W5", lambda: run_phase(self.server, ws, timeout=self.p.timeout))

    def closed_loop(self, items: list[tuple[int, int]], inflight: int) -> PhaseRun:
        senders = [
            (user_name(SENDER_BASE + 1000 + k), part)
            for k, part in enumerate(split(items, self.p.w6_conns))
        ]
        ws: list[Worker] = [
            LoopWorker(self.port, part, inflight, 4 * self.p.conc)
            for part in split(senders, self.p.procs)
        ]
        name = "W6" if inflight == 1 else "W6P"
        return self._phase(name, lambda: run_phase(self.server, ws, timeout=self.p.timeout))

    def login_drain(self, users: list[int], expected: dict[int, int]) -> PhaseRun:
        return self._phase("W7", lambda: self.drain(users, expected))
