"""NATS JetStream through nats-py (plus raw sockets for W4's idle connections).

A user's queue is a durable pull consumer with explicit acks on a file-backed
work-queue stream ``MAIL`` (subjects ``user.*``, one filter subject per user);
an acknowledged message is removed from the stream, as in Mailslot. A send is
a JetStream publish counted when its PubAck arrives. A drain is a pull request
with ``no_wait`` (the "check") answered by the waiting messages, each acked.

Broadcast (W3) is one publish to subject ``bcast`` on a second stream
``BCAST`` with interest retention and one durable consumer per user: the text
is stored once and removed when every user has acked it, like Mailslot's
``mode: all``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

from bench.base import Result, System, now
from bench.drivers import BufferedConn, HoldWorker, sleep_until
from bench.harness import PhaseRun, Worker, bounded_gather, run_phase, split
from bench.payload import BROADCAST, text_for, user_name
from bench.procs import ServerProc, free_port
from bench.sys_mqtt import latency_workers

BATCH = 200
CHECK_USER = "chk"


def subj(u: int) -> str:
    return "user." + user_name(u)


async def _connect(port: int) -> Any:
    return await nats.connect(
        f"nats://127.0.0.1:{port}",
        max_reconnect_attempts=0,
        allow_reconnect=False,
        pending_size=64 * 1024 * 1024,
    )


def consumer_cfg(name: str, filt: str | None) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=name,
        filter_subject=filt,
        ack_policy=AckPolicy.EXPLICIT,
        max_ack_pending=100_000,
        ack_wait=60,
    )


class ConsumerSetupWorker(Worker):
    def __init__(self, port: int, stream: str, users: list[int], bcast: bool, conc: int) -> None:
        self.port, self.stream, self.users, self.bcast, self.conc = port, stream, users, bcast, conc

    async def prepare(self) -> None:
        self.nc = await _connect(self.port)
        self.jsm = self.nc.jsm()

    async def one(self, u: int) -> None:
        name = ("b" if self.bcast else "") + user_name(u)
        filt = None if self.bcast else subj(u)
        await self.jsm.add_consumer(self.stream, consumer_cfg(name, filt))

    async def run(self) -> Result:
        await bounded_gather([self.one(u) for u in self.users], self.conc)
        return {"n": len(self.users)}

    async def close(self) -> None:
        await self.nc.close()


class StoreWorker(Worker):
    def __init__(self, port: int, items: list[tuple[int, int]], window: int) -> None:
        self.port, self.items, self.window = port, items, window

    async def prepare(self) -> None:
        self.nc = await _connect(self.port)
        self.js = self.nc.jetstream(publish_async_max_pending=self.window)
        self.pkts = [(s, subj(u), text_for(s, u).encode()) for s, u in self.items]

    async def run(self) -> Result:
        futs = []
        for s, sj, data in self.pkts:
            futs.append((s, await self.js.publish_async(sj, data)))
        await asyncio.wait_for(self.js.publish_async_completed(), 120)
        acked = [s for s, f in futs if f.done() and not f.cancelled() and f.exception() is None]
        return {"acked": acked}

    async def close(self) -> None:
        await self.nc.close()


class Puller:
    """One subscription on a per-process inbox; pull requests with no_wait."""

    def __init__(self, nc: Any, stream: str) -> None:
        self.nc, self.stream = nc, stream
        self.prefix = nc.new_inbox() + "."
        self.states: dict[str, list[Any]] = {}

    async def start(self) -> None:
        await self.nc.subscribe(self.prefix + "*", cb=self.on_msg)

    async def on_msg(self, msg: Any) -> None:
        # delivered messages keep their own subject; the consumer is in the ack subject
        reply = msg.reply
        if reply and reply.startswith("$JS.ACK."):
            key = reply.split(".", 4)[3]
        else:
            key = msg.subject[len(self.prefix) :]
        st = self.states.get(key)
        if st is None:
            return
        hdr = msg.headers
        if hdr and hdr.get("Status"):
            st[2] = True
        else:
            st[0].append(msg.data.decode())
            st[1] += 1
            await self.nc.publish(msg.reply, b"")  # +ACK
        if (st[2] or st[1] >= BATCH) and not st[3].done():
            st[3].set_result(None)

    async def pull(self, consumer: str, timeout: float = 10.0) -> list[str]:
        texts: list[str] = []
        while True:
            fut = asyncio.get_running_loop().create_future()
            self.states[consumer] = [texts, 0, False, fut]
            await self.nc.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{consumer}",
                json.dumps({"batch": BATCH, "no_wait": True}).encode(),
                reply=self.prefix + consumer,
            )
            await asyncio.wait_for(fut, timeout)
            st = self.states.pop(consumer)
            if st[2]:  # "no messages" status: queue empty
                break
        await self.nc.flush()
        return texts


async def wait_stream_empty(nc: Any, stream: str, limit: float = 120) -> int:
    """Wait until JetStream has applied every ack: the stream is empty (work-queue and
    interest retention both delete a message once acked by every consumer).
    Returns the messages still in the stream when ``limit`` seconds have passed."""
    jsm = nc.jsm()
    t = now()
    left = -1
    while now() - t < limit:
        info = await jsm.stream_info(stream)
        left = int(info.state.messages)
        if left == 0:
            break
        await asyncio.sleep(0.05)
    return left


class DrainWorker(Worker):
    def __init__(self, port: int, stream: str, users: list[int], conc: int) -> None:
        self.port, self.stream, self.users, self.conc = port, stream, users, conc
        self.got: list[tuple[int, str]] = []

    async def prepare(self) -> None:
        self.nc = await _connect(self.port)
        self.puller = Puller(self.nc, self.stream)
        await self.puller.start()

    async def one(self, u: int) -> None:
        name = ("b" if self.stream == "BCAST" else "") + user_name(u)
        for t in await self.puller.pull(name):
            self.got.append((u, t))

    async def run(self) -> Result:
        await bounded_gather([self.one(u) for u in self.users], self.conc)
        # acks are plain publishes that JetStream applies asynchronously
        t = now()
        left = await wait_stream_empty(self.nc, self.stream)
        return {"got": self.got, "settle_s": now() - t, "stream_left": left}

    async def close(self) -> None:
        await self.nc.close()


class NatsConn(BufferedConn):
    """The NATS client protocol spoken directly (W6, W7): CONNECT with headers, and one
    subscription on an inbox of its own, as a lean client would do it."""

    def __init__(self) -> None:
        super().__init__()
        self.buf = bytearray()
        self.inbox = b"_R." + os.urandom(8).hex().encode() + b"."
        self.pongs: deque[asyncio.Future[None]] = deque()
        self.errors: list[bytes] = []
        # (subject, reply, status header or None, payload)
        self.on_msg: Callable[[bytes, bytes, bytes | None, bytes], None] | None = None
        self.after_read: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.write(
            b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
            b'"no_responders":true,"protocol":1}\r\n'
            b"SUB " + self.inbox + b"* 1\r\n"
        )

    def connection_lost(self, exc: Exception | None) -> None:
        for f in self.pongs:
            if not f.done():
                f.set_exception(ConnectionError("connection lost"))
        super().connection_lost(exc)

    def publish(self, subject: bytes, reply: bytes, payload: bytes) -> None:
        self.out.append(b"PUB %s %s %d\r\n%s\r\n" % (subject, reply, len(payload), payload))

    async def ping(self) -> None:
        """PING/PONG: the server has read and applied everything written before."""
        f: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pongs.append(f)
        self.out.append(b"PING\r\n")
        self.flush()
        await asyncio.wait_for(f, 30)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        while (i := buf.find(b"\r\n", pos)) >= 0:
            line = bytes(buf[pos:i])
            if line.startswith((b"MSG ", b"HMSG ")):
                parts = line.split()
                hmsg = parts[0] == b"HMSG"
                total = int(parts[-1])
                end = i + 2 + total
                if len(buf) < end + 2:
                    break
                body = bytes(buf[i + 2 : end])
                pos = end + 2
                hdr = int(parts[-2]) if hmsg else 0
                reply = parts[3] if len(parts) == (6 if hmsg else 5) else b""
                if self.on_msg is not None:
                    self.on_msg(parts[1], reply, body[:hdr] if hmsg else None, body[hdr:])
                continue
            pos = i + 2
            if line == b"PING":
                self.out.append(b"PONG\r\n")
            elif line == b"PONG" and self.pongs:
                f = self.pongs.popleft()
                if not f.done():
                    f.set_result(None)
            elif line.startswith(b"-ERR"):
                self.errors.append(line)
        del buf[:pos]
        if self.after_read is not None:
            self.after_read()
        self.flush()

    async def aclose(self) -> None:
        if self.transport is not None:
            self.transport.close()
        await self.wait_closed()


class JsPublisher:
    """A window of JetStream publishes in flight on one NatsConn; a send counts when its
    PubAck (a reply on the connection's inbox, one inbox token per slot) arrives."""

    def __init__(self, conn: NatsConn, window: int) -> None:
        self.c = conn
        self.free: deque[bytes] = deque(conn.inbox + b"%d" % k for k in range(window))
        self.inflight: dict[bytes, tuple[int, float]] = {}
        self.items: deque[tuple[int, bytes, bytes]] = deque()
        self.acked: list[int] = []
        self.lat: list[float] = []
        self.errors: list[bytes] = []
        self.idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        conn.on_msg = self.puback
        conn.after_read = self.fill

    def puback(self, subject: bytes, reply: bytes, status: bytes | None, payload: bytes) -> None:
        seq, t = self.inflight.pop(subject)
        self.free.append(subject)
        if status is None and b'"error"' not in payload:
            self.acked.append(seq)
            self.lat.append((now() - t) * 1000)
        else:
            self.errors.append(status or payload)

    def fill(self) -> None:
        while self.items and self.free:
            seq, subject, payload = self.items.popleft()
            slot = self.free.popleft()
            self.inflight[slot] = (seq, now())
            self.c.publish(subject, slot, payload)
        if not self.items and not self.inflight and not self.idle.done():
            self.idle.set_result(None)

    async def send_all(self, items: list[tuple[int, bytes, bytes]]) -> None:
        self.idle = asyncio.get_running_loop().create_future()
        self.items.extend(items)
        self.fill()
        self.c.flush()
        await self.idle


class LoopWorker(Worker):
    """W6/W6p: raw connections that each keep ``inflight`` JetStream publishes outstanding."""

    def __init__(
        self, port: int, senders: list[list[tuple[int, int]]], inflight: int, conc: int
    ) -> None:
        self.port, self.senders, self.inflight, self.conc = port, senders, inflight, conc

    async def open_one(self) -> JsPublisher:
        c = await NatsConn.open(self.port)
        await c.ping()
        c.write_each = True
        return JsPublisher(c, self.inflight)

    async def prepare(self) -> None:
        self.pubs: list[JsPublisher] = await bounded_gather(
            [self.open_one() for _ in self.senders], self.conc
        )
        self.pkts = [
            [(s, subj(u).encode(), text_for(s, u).encode()) for s, u in items]
            for items in self.senders
        ]

    async def run(self) -> Result:
        await asyncio.gather(*(p.send_all(k) for p, k in zip(self.pubs, self.pkts, strict=True)))
        errors = [e for p in self.pubs for e in p.errors]
        return {
            "acked": [s for p in self.pubs for s in p.acked],
            "lat_ms": [x for p in self.pubs for x in p.lat],
            "errors": [e.decode(errors="replace") for e in errors[:5]],
            "n_errors": len(errors),
        }

    async def close(self) -> None:
        await asyncio.gather(*(p.c.aclose() for p in self.pubs))


class LoginDrainWorker(Worker):
    """W7: per user a connection of its own (CONNECT, PING/PONG: NATS's nearest thing to a
    login), pull requests with no_wait on the user's consumer, an ack per message, a
    PING/PONG fence, close."""

    def __init__(self, port: int, users: list[int], conc: int) -> None:
        self.port, self.users, self.conc = port, users, conc
        self.got: list[tuple[int, str]] = []
        self.login_ms: list[float] = []
        self.session_ms: list[float] = []

    async def prepare(self) -> None:
        self.nc = await _connect(self.port)

    async def pull(self, c: NatsConn, u: int) -> bool:
        """One pull of up to BATCH messages, each acked; False once the queue is empty."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        count = 0
        empty = False

        def on_msg(subject: bytes, reply: bytes, status: bytes | None, payload: bytes) -> None:
            nonlocal count, empty
            if status is not None:  # 404 No Messages (or 408): nothing more waiting
                empty = True
            else:
                self.got.append((u, payload.decode()))
                c.publish(reply, b"", b"")
                count += 1
            if (empty or count >= BATCH) and not done.done():
                done.set_result(None)

        c.on_msg = on_msg
        c.publish(
            b"$JS.API.CONSUMER.MSG.NEXT.MAIL." + user_name(u).encode(),
            c.inbox + b"p",
            b'{"batch":%d,"no_wait":true}' % BATCH,
        )
        c.flush()
        await asyncio.wait_for(done, 10)
        return not empty

    async def one(self, u: int) -> None:
        t0 = now()
        c = await NatsConn.open(self.port)
        await c.ping()
        self.login_ms.append((now() - t0) * 1000)
        while await self.pull(c, u):
            pass
        await c.ping()
        self.session_ms.append((now() - t0) * 1000)
        await c.aclose()

    async def run(self) -> Result:
        await bounded_gather([self.one(u) for u in self.users], self.conc)
        t = now()
        left = await wait_stream_empty(self.nc, "MAIL")
        return {
            "got": self.got,
            "settle_s": now() - t,
            "stream_left": left,
            "login_ms": self.login_ms,
            "session_ms": self.session_ms,
        }

    async def close(self) -> None:
        await self.nc.close()


class LeftoverWorker(Worker):
    def __init__(self, port: int, stream: str, users: list[int], conc: int) -> None:
        self.port, self.stream, self.users, self.conc = port, stream, users, conc

    async def prepare(self) -> None:
        self.nc = await _connect(self.port)
        self.jsm = self.nc.jsm()

    async def one(self, u: int) -> int:
        name = ("b" if self.stream == "BCAST" else "") + user_name(u)
        ci = await self.jsm.consumer_info(self.stream, name)
        return int(ci.num_pending or 0) + int(ci.num_ack_pending or 0)

    async def run(self) -> Result:
        left = await bounded_gather([self.one(u) for u in self.users], self.conc)
        return {"leftover": sum(left)}

    async def close(self) -> None:
        await self.nc.close()


class BcastWorker(Worker):
    def __init__(self, port: int, seqs: list[int]) -> None:
        self.port, self.seqs = port, seqs

    async def prepare(self) -> None:
        self.nc = await _connect(self.port)
        self.js = self.nc.jetstream()

    async def run(self) -> Result:
        lat, acked = [], []
        for s in self.seqs:
            t = now()
            await self.js.publish("bcast", text_for(s, BROADCAST).encode())
            lat.append((now() - t) * 1000)
            acked.append(s)
        return {"lat_ms": lat, "acked": acked, "recipients": -1}

    async def close(self) -> None:
        await self.nc.close()


class RawConn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.pong: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b'CONNECT {"verbose":false,"pedantic":false,"name":"idle"}\r\nPING\r\n')

    def data_received(self, data: bytes) -> None:
        self.buf = (self.buf + data)[-64:]
        if b"PONG\r\n" in data and not self.pong.done():
            self.pong.set_result(None)
        if b"PING\r\n" in data and self.transport is not None:
            self.transport.write(b"PONG\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.pong.done():
            self.pong.set_exception(ConnectionError("lost"))


class ConnWorker(HoldWorker[RawConn]):
    """One idle raw connection per user (NATS has no login: the user only counts)."""

    async def connect(self, u: int) -> RawConn:
        _, c = await asyncio.get_running_loop().create_connection(RawConn, "127.0.0.1", self.port)
        await c.pong
        return c

    def drop(self, c: RawConn) -> None:
        if c.transport is not None:
            c.transport.close()


class LatencyWorker(Worker):
    def __init__(
        self, port: int, name: str, plan: list[tuple[int, int]], at: list[float], window: int
    ) -> None:
        self.port, self.name, self.plan, self.at, self.window = port, name, plan, at, window
        self.checker = name == "lat0"
        self.check_failures = 0

    async def prepare(self) -> None:
        self.nc = await _connect(self.port)
        self.js = self.nc.jetstream(publish_async_max_pending=self.window)
        self.pkts = [(subj(u), text_for(s, u).encode()) for s, u in self.plan]

    async def checks(self, stop: asyncio.Event, rate: float) -> list[float]:
        out = []
        req = json.dumps({"batch": 1, "no_wait": True}).encode()
        while not stop.is_set():
            t = now()
            try:
                await self.nc.request(
                    f"$JS.API.CONSUMER.MSG.NEXT.MAIL.{CHECK_USER}", req, timeout=5
                )
            except Exception:
                self.check_failures += 1
                continue
            out.append((now() - t) * 1000)
            await asyncio.sleep(max(0.0, 1 / rate - (now() - t)))
        return out

    async def run(self) -> Result:
        lat: list[float] = []
        ok = [0]
        stop = asyncio.Event()
        chk = asyncio.create_task(self.checks(stop, 100.0)) if self.checker else None
        t0 = now()

        def done(f: Any, t: float) -> None:
            if not f.cancelled() and f.exception() is None:
                lat.append((now() - t) * 1000)
                ok[0] += 1

        for (sj, data), off in zip(self.pkts, self.at, strict=True):
            await sleep_until(t0 + off)
            f = await self.js.publish_async(sj, data)
            f.add_done_callback(lambda f, t=t0 + off: done(f, t))
        await asyncio.wait_for(self.js.publish_async_completed(), 60)
        stop.set()
        check_ms = await chk if chk is not None else []
        return {
            "lat_ms": lat,
            "check_ms": check_ms,
            "sent": len(self.pkts),
            "acked": ok[0],
            "check_failures": self.check_failures,
        }

    async def close(self) -> None:
        await self.nc.close()


class NatsJetStream(System):
    binary = "/usr/sbin/nats-server"
    check_note = "pull request (batch 1, no_wait) on an empty durable consumer"
    conn_note = "raw TCP CONNECT + PING/PONG (NATS has no user login)"
    broadcast_note = (
        "one publish to subject bcast on an interest-retention stream with a "
        "durable consumer per user (stored once)"
    )

    def __init__(self, workdir: Any, params: Any, always: bool = False) -> None:
        super().__init__(workdir, params)
        self.always = always
        self.name = "nats-always" if always else "nats"
        if always:
            self.label = "NATS JetStream (sync_interval: always)"
            self.ack_meaning = "fsync'd (sync_interval: always)"
            if not self._supports_sync_interval():
                self.unsupported = (
                    f"{self.version()} rejects `sync_interval` (added in nats-server 2.10)"
                )
        else:
            self.label = "NATS JetStream (file storage, default sync)"
            self.ack_meaning = "written (to the OS page cache; fsync every 2 min by default)"

    def version(self) -> str:
        return subprocess.run(
            [self.binary, "--version"], capture_output=True, text=True
        ).stdout.strip()

    def _conf(self, port: int) -> str:
        sync = "  sync_interval: always\n" if self.always else ""
        return (
            f"listen: 127.0.0.1:{port}\nmax_payload: 1MB\nmax_connections: 100000\n"
            f"jetstream {{\n  store_dir: {self.workdir / 'js'}\n"
            f"  max_file_store: 10GB\n  max_memory_store: 1GB\n{sync}}}\n"
        )

    def _supports_sync_interval(self) -> bool:
        conf = self.workdir / "probe.conf"
        conf.write_text(self._conf(free_port()))
        r = subprocess.run([self.binary, "-c", str(conf), "-t"], capture_output=True, text=True)
        return r.returncode == 0

    def start(self) -> None:
        port = free_port()
        conf = self.workdir / "nats.conf"
        conf.write_text(self._conf(port))
        self.port = port
        self.server = ServerProc(self.name, [self.binary, "-c", str(conf)], port, self.workdir)
        self.server.start()
        asyncio.run(self._streams())

    async def _streams(self) -> None:
        nc = await _connect(self.port)
        jsm = nc.jsm()
        for _ in range(50):  # JetStream may need a moment after the port opens
            try:
                await jsm.add_stream(
                    StreamConfig(
                        name="MAIL",
                        subjects=["user.*"],
                        storage=StorageType.FILE,
                        retention=RetentionPolicy.WORK_QUEUE,
                    )
                )
                break
            except Exception:
                await asyncio.sleep(0.1)
        await jsm.add_stream(
            StreamConfig(
                name="BCAST",
                subjects=["bcast"],
                storage=StorageType.FILE,
                retention=RetentionPolicy.INTEREST,
            )
        )
        await jsm.add_consumer("MAIL", consumer_cfg(CHECK_USER, "user." + CHECK_USER))
        await nc.close()

    def _split(self, users: list[int]) -> list[list[int]]:
        return split(users, self.p.procs)

    def setup_users(self, users: list[int]) -> PhaseRun:
        ws: list[Worker] = [
            ConsumerSetupWorker(self.port, "MAIL", part, False, self.p.conc)
            for part in self._split(users)
        ]
        self._drain_stream = "MAIL"
        return run_phase(self.server, ws, timeout=self.p.timeout)

    def store(self, plan: list[int]) -> PhaseRun:
        items = list(enumerate(plan))
        ws: list[Worker] = [
            StoreWorker(self.port, part, self.p.window) for part in split(items, self.p.senders)
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout)

    _drain_stream = "MAIL"  # BCAST once W3 has set up its consumers

    def drain(self, users: list[int], expected: dict[int, int]) -> PhaseRun:
        ws: list[Worker] = [
            DrainWorker(self.port, self._drain_stream, part, self.p.conc)
            for part in self._split(users)
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout)

    def leftover(self, users: list[int]) -> int:
        total = 0
        for _ in range(20):  # acks are applied asynchronously: settle for up to ~2 s
            ws: list[Worker] = [
                LeftoverWorker(self.port, self._drain_stream, part, self.p.conc)
                for part in self._split(users)
            ]
            r = run_phase(self.server, ws, timeout=self.p.timeout)
            total = sum(x["leftover"] for x in r.results)
            if total == 0:
                break
            time.sleep(0.1)
        return total

    def bcast_setup(self, users: list[int]) -> PhaseRun:
        ws: list[Worker] = [
            ConsumerSetupWorker(self.port, "BCAST", part, True, self.p.conc)
            for part in self._split(users)
        ]
        self._drain_stream = "BCAST"
        return run_phase(self.server, ws, timeout=self.p.timeout)

    def bcast_send(self, seqs: list[int]) -> PhaseRun:
        return run_phase(self.server, [BcastWorker(self.port, seqs)], timeout=self.p.timeout)

    def connections(self, n: int) -> PhaseRun:
        ws: list[Worker] = [
            ConnWorker(self.port, part, self.p.conc) for part in self._split(list(range(n)))
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout, hold=True)

    def latency(self, users: list[int]) -> PhaseRun:
        return run_phase(
            self.server, latency_workers(self, users, LatencyWorker), timeout=self.p.timeout
        )

    def closed_loop(self, items: list[tuple[int, int]], inflight: int) -> PhaseRun:
        ws: list[Worker] = [
            LoopWorker(self.port, part, inflight, 4 * self.p.conc)
            for part in split(split(items, self.p.w6_conns), self.p.procs)
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout)

    def login_drain(self, users: list[int], expected: dict[int, int]) -> PhaseRun:
        ws: list[Worker] = [
            LoginDrainWorker(self.port, part, self.p.conc) for part in self._split(users)
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout)
