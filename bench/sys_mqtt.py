"""Mosquitto through a minimal MQTT 3.1.1 QoS 1 client written on asyncio.

A user is an MQTT client id with a persistent session (clean_session = 0)
subscribed with QoS 1 to ``u/<name>`` (and, for W3, to ``bcast``). A send is
a QoS 1 PUBLISH counted when its PUBACK arrives; a drain is a reconnect with
clean_session = 0 that receives and PUBACKs the queued messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import subprocess
from collections import deque
from collections.abc import Callable
from typing import Any

from bench.base import Result, System, now, schedule
from bench.drivers import BufferedConn, HoldWorker, settle, sleep_until
from bench.harness import PhaseRun, Worker, bounded_gather, run_phase, split
from bench.payload import BROADCAST, text_for, user_name
from bench.procs import ServerProc, free_port

BCAST_TOPIC = b"bcast"


def _remlen(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _s(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def connect_pkt(client_id: str, clean: bool, keepalive: int = 600) -> bytes:
    vh = b"\x00\x04MQTT\x04" + bytes([0x02 if clean else 0x00]) + struct.pack("!H", keepalive)
    body = vh + _s(client_id.encode())
    return b"\x10" + _remlen(len(body)) + body


def subscribe_pkt(pid: int, topic: bytes) -> bytes:
    body = struct.pack("!H", pid) + _s(topic) + b"\x01"
    return b"\x82" + _remlen(len(body)) + body


def publish_pkt(pid: int, topic: bytes, payload: bytes) -> bytes:
    body = _s(topic) + struct.pack("!H", pid) + payload
    return b"\x32" + _remlen(len(body)) + body


def topic_for(i: int) -> bytes:
    return b"u/" + user_name(i).encode()


class MqttConn(BufferedConn):
    def __init__(self) -> None:
        super().__init__()
        self.buf = bytearray()
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[tuple[int, int]] = loop.create_future()
        self.waiters: dict[int, asyncio.Future[None]] = {}
        self.pings: deque[asyncio.Future[None]] = deque()
        self.on_puback: Callable[[int], None] | None = None
        self.on_message: Callable[[bytes, bytes], None] | None = None
        self.after_read: Callable[[], None] | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        for f in [self.connack, *self.waiters.values(), *self.pings]:
            if not f.done():
                f.set_exception(ConnectionError("connection lost"))
        super().connection_lost(exc)

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            h = buf[pos]
            mult, rl, i = 1, 0, pos + 1
            while True:
                if i >= n:
                    rl = -1
                    break
                b = buf[i]
                rl += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    break
            if rl < 0 or n - i < rl:
                break
            body = bytes(buf[i : i + rl])
            pos = i + rl
            t = h >> 4
            if t == 3:  # PUBLISH
                tl = (body[0] << 8) | body[1]
                topic = body[2 : 2 + tl]
                q = (h >> 1) & 3
                off = 2 + tl
                if q:
                    pid = body[off : off + 2]
                    off += 2
                    self.out.append(b"\x40\x02" + pid)
                if self.on_message is not None:
                    self.on_message(topic, body[off:])
            elif t == 4:  # PUBACK
                if self.on_puback is not None:
                    self.on_puback((body[0] << 8) | body[1])
            elif t == 2:  # CONNACK
                if not self.connack.done():
                    self.connack.set_result((body[0], body[1]))
            elif t == 9:  # SUBACK
                f = self.waiters.pop((body[0] << 8) | body[1], None)
                if f is not None and not f.done():
                    f.set_result(None)
            elif t == 13 and self.pings:  # PINGRESP
                f2 = self.pings.popleft()
                if not f2.done():
                    f2.set_result(None)
        del buf[:pos]
        if self.after_read is not None:
            self.after_read()
        self.flush()

    async def login(self, client_id: str, clean: bool = False) -> int:
        self.write(connect_pkt(client_id, clean))
        self.flush()
        present, rc = await self.connack
        if rc:
            raise ConnectionError(f"CONNACK refused rc={rc}")
        return present

    async def subscribe(self, topic: bytes, pid: int = 1) -> None:
        f: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters[pid] = f
        self.write(subscribe_pkt(pid, topic))
        self.flush()
        await f

    async def ping(self) -> None:
        f: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pings.append(f)
        self.write(b"\xc0\x00")
        self.flush()
        await f

    def hang_up(self) -> None:
        """Send DISCONNECT and close the transport (without waiting)."""
        if self.transport is not None and not self.transport.is_closing():
            self.write(b"\xe0\x00")
            self.flush()
            self.transport.close()

    async def disconnect(self) -> None:
        self.hang_up()
        await self.wait_closed()


# --- workers -------------------------------------------------------------------------


class SetupWorker(Worker):
    """Create persistent sessions subscribed to the given topic, then disconnect."""

    def __init__(self, port: int, users: list[int], topic: bytes | None, conc: int) -> None:
        self.port, self.users, self.topic, self.conc = port, users, topic, conc

    async def one(self, u: int) -> None:
        c = await MqttConn.open(self.port)
        await c.login(user_name(u), clean=False)
        await c.subscribe(self.topic if self.topic is not None else topic_for(u))
        await c.disconnect()

    async def run(self) -> Result:
        await bounded_gather([self.one(u) for u in self.users], self.conc)
        return {"n": len(self.users)}


class Publisher:
    """A window of QoS 1 publishes in flight on one connection.

    Latency counts from an item's scheduled time, or from when it is written
    (``stamp_on_send``, for closed loops).
    """

    def __init__(self, conn: MqttConn, window: int, stamp_on_send: bool = False) -> None:
        self.c = conn
        self.stamp_on_send = stamp_on_send
        self.free: deque[int] = deque(range(1, min(window, 65535) + 1))
        self.inflight: dict[int, tuple[int, float]] = {}
        self.acked: list[int] = []
        self.lat: list[float] = []
        self.items: deque[tuple[int, bytes, bytes, float]] = deque()
        loop = asyncio.get_running_loop()
        self.idle: asyncio.Future[None] = loop.create_future()
        conn.on_puback = self.puback
        conn.after_read = self.fill

    def puback(self, pid: int) -> None:
        seq, t = self.inflight.pop(pid)
        self.acked.append(seq)
        if t:
            self.lat.append((now() - t) * 1000)
        self.free.append(pid)

    def fill(self) -> None:
        while self.items and self.free:
            seq, topic, payload, t = self.items.popleft()
            if self.stamp_on_send:
                t = now()
            pid = self.free.popleft()
            self.inflight[pid] = (seq, t)
            self.c.write(publish_pkt(pid, topic, payload))
        if not self.items and not self.inflight and not self.idle.done():
            self.idle.set_result(None)

    async def send_all(self, items: list[tuple[int, bytes, bytes, float]]) -> None:
        self.idle = asyncio.get_running_loop().create_future()
        self.items.extend(items)
        self.fill()
        self.c.flush()
        await self.idle


class StoreWorker(Worker):
    def __init__(self, port: int, name: str, items: list[tuple[int, int]], window: int) -> None:
        self.port, self.name, self.items, self.window = port, name, items, window

    async def prepare(self) -> None:
        self.c = await MqttConn.open(self.port)
        await self.c.login(self.name, clean=True)
        self.pub = Publisher(self.c, self.window)
        self.pkts = [(s, topic_for(u), text_for(s, u).encode(), 0.0) for s, u in self.items]

    async def run(self) -> Result:
        await self.pub.send_all(self.pkts)
        return {"acked": self.pub.acked}

    async def close(self) -> None:
        await self.c.disconnect()


class DrainWorker(Worker):
    """Reconnect each user (clean_session 0), receive its queue, PUBACK, disconnect.

    MQTT has no "queue is empty" answer, so a user is done when it has received
    what the plan sent it, or after ``idle`` seconds without a message.
    """

    def __init__(
        self, port: int, users: list[int], expected: dict[int, int], conc: int, idle: float
    ) -> None:
        self.port, self.users, self.expected, self.conc, self.idle = (
            port,
            users,
            expected,
            conc,
            idle,
        )
        self.got: list[tuple[int, str]] = []
        self.login_ms: list[float] = []
        self.session_ms: list[float] = []

    async def one(self, u: int) -> None:
        want = self.expected.get(u, 0)
        t0 = now()
        c = await MqttConn.open(self.port)
        done = asyncio.get_running_loop().create_future()
        count = 0
        last = [now()]

        def on_message(topic: bytes, payload: bytes) -> None:
            nonlocal count
            count += 1
            last[0] = now()
            self.got.append((u, payload.decode()))
            if count >= want and not done.done():
                done.set_result(None)

        c.on_message = on_message
        await c.login(user_name(u), clean=False)
        self.login_ms.append((now() - t0) * 1000)
        if want == 0:
            done.set_result(None)
        while not done.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), self.idle)
            if not done.done() and now() - last[0] >= self.idle:
                break
        c.flush()
        # PINGREQ/PINGRESP fence: the broker has read every PUBACK before DISCONNECT
        # (without it Mosquitto 2.0.11 redelivers some acknowledged messages later)
        await c.ping()
        self.session_ms.append((now() - t0) * 1000)
        await c.disconnect()

    async def run(self) -> Result:
        await bounded_gather([self.one(u) for u in self.users], self.conc)
        return {"got": self.got, "login_ms": self.login_ms, "session_ms": self.session_ms}


class LeftoverWorker(Worker):
    """Reconnect each user, fence with PINGREQ, count whatever arrives."""

    def __init__(self, port: int, users: list[int], conc: int) -> None:
        self.port, self.users, self.conc = port, users, conc
        self.count = 0

    async def one(self, u: int) -> None:
        c = await MqttConn.open(self.port)

        def on_message(topic: bytes, payload: bytes) -> None:
            self.count += 1

        c.on_message = on_message
        await c.login(user_name(u), clean=False)
        await c.ping()
        await asyncio.sleep(0.05)
        await c.ping()
        await c.disconnect()

    async def run(self) -> Result:
        await bounded_gather([self.one(u) for u in self.users], self.conc)
        return {"leftover": self.count}


class BcastWorker(Worker):
    def __init__(self, port: int, seqs: list[int]) -> None:
        self.port, self.seqs = port, seqs

    async def prepare(self) -> None:
        self.c = await MqttConn.open(self.port)
        await self.c.login("bsender", clean=True)
        self.pub = Publisher(self.c, 1)

    async def run(self) -> Result:
        for s in self.seqs:
            await self.pub.send_all([(s, BCAST_TOPIC, text_for(s, BROADCAST).encode(), now())])
        return {"lat_ms": self.pub.lat, "acked": self.pub.acked, "recipients": -1}

    async def close(self) -> None:
        await self.c.disconnect()


class LoopWorker(Worker):
    """W6/W6p: connections that each keep ``inflight`` QoS 1 publishes outstanding."""

    def __init__(
        self, port: int, senders: list[tuple[str, list[tuple[int, int]]]], inflight: int, conc: int
    ) -> None:
        self.port, self.senders, self.inflight, self.conc = port, senders, inflight, conc

    async def open_one(self, name: str) -> Publisher:
        c = await MqttConn.open(self.port)
        await c.login(name, clean=True)
        c.write_each = True
        return Publisher(c, self.inflight, stamp_on_send=True)

    async def prepare(self) -> None:
        self.pubs: list[Publisher] = await bounded_gather(
            [self.open_one(n) for n, _ in self.senders], self.conc
        )
        self.pkts = [
            [(s, topic_for(u), text_for(s, u).encode(), 0.0) for s, u in items]
            for _, items in self.senders
        ]

    async def run(self) -> Result:
        await asyncio.gather(*(p.send_all(k) for p, k in zip(self.pubs, self.pkts, strict=True)))
        return {
            "acked": [s for p in self.pubs for s in p.acked],
            "lat_ms": [x for p in self.pubs for x in p.lat],
            "n_errors": 0,
        }

    async def close(self) -> None:
        await asyncio.gather(*(p.c.disconnect() for p in self.pubs))


class ConnWorker(HoldWorker[MqttConn]):
    async def connect(self, u: int) -> MqttConn:
        c = await MqttConn.open(self.port)
        await c.login(user_name(u), clean=False)
        return c

    def drop(self, c: MqttConn) -> None:
        c.hang_up()


class LatencyWorker(Worker):
    def __init__(
        self, port: int, name: str, plan: list[tuple[int, int]], at: list[float], window: int
    ) -> None:
        self.port, self.name, self.plan, self.at, self.window = port, name, plan, at, window

    async def prepare(self) -> None:
        self.c = await MqttConn.open(self.port)
        await self.c.login(self.name, clean=True)
        self.pub = Publisher(self.c, self.window)

    async def run(self) -> Result:
        t0 = now()
        pub = self.pub
        pub.idle = asyncio.get_running_loop().create_future()
        for (s, u), off in zip(self.plan, self.at, strict=True):
            await sleep_until(t0 + off)
            # latency counts from the scheduled time (no coordinated omission)
            pub.items.append((s, topic_for(u), text_for(s, u).encode(), t0 + off))
            pub.fill()
            self.c.flush()
        await settle(pub, 30)
        return {"lat_ms": pub.lat, "check_ms": [], "sent": len(self.plan), "acked": len(pub.acked)}

    async def close(self) -> None:
        await self.c.disconnect()


# --- system --------------------------------------------------------------------------


class Mosquitto(System):
    name = "mosquitto"
    label = "Mosquitto 2.0 (MQTT QoS 1)"
    ack_meaning = "in memory (PUBACK once queued; on disk only at autosave/shutdown)"
    broadcast_note = (
        "one QoS 1 PUBLISH to a topic every user's persistent session "
        "subscribes to (stored once, queued per session)"
    )
    conn_note = "CONNECT clean_session=0 (resumes the user's persistent session)"
    check_note = "n/a (MQTT has no pull; messages are pushed on reconnect)"
    binary = "/usr/sbin/mosquitto"

    def version(self) -> str:
        out = subprocess.run([self.binary, "-h"], capture_output=True, text=True).stdout
        return out.splitlines()[0] if out else "?"

    def start(self) -> None:
        port = free_port()
        data = self.workdir / "mosquitto-data"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"""# written by bench
user root
listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {data}/
autosave_interval 1800
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 0
max_connections -1
set_tcp_nodelay true
log_dest file {self.workdir}/mosquitto-broker.log
log_type error
log_type warning
log_type notice
connection_messages true
"""
        )
        self.port = port
        self.server = ServerProc(self.name, [self.binary, "-c", str(conf)], port, self.workdir)
        self.server.start()

    def setup_users(self, users: list[int]) -> PhaseRun:
        ws: list[Worker] = [
            SetupWorker(self.port, part, None, self.p.conc) for part in split(users, self.p.procs)
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout)

    def store(self, plan: list[int]) -> PhaseRun:
        items = list(enumerate(plan))
        ws: list[Worker] = [
            StoreWorker(self.port, f"snd{i}", part, self.p.window)
            for i, part in enumerate(split(items, self.p.senders))
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout)

    def drain(self, users: list[int], expected: dict[int, int]) -> PhaseRun:
        ws: list[Worker] = [
            DrainWorker(self.port, part, expected, self.p.conc, 2.0)
            for part in split(users, self.p.procs)
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout)

    def leftover(self, users: list[int]) -> int:
        ws: list[Worker] = [
            LeftoverWorker(self.port, part, self.p.conc) for part in split(users, self.p.procs)
        ]
        r = run_phase(self.server, ws, timeout=self.p.timeout)
        return sum(x["leftover"] for x in r.results)

    def bcast_setup(self, users: list[int]) -> PhaseRun:
        ws: list[Worker] = [
            SetupWorker(self.port, part, BCAST_TOPIC, self.p.conc)
            for part in split(users, self.p.procs)
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout)

    def bcast_send(self, seqs: list[int]) -> PhaseRun:
        return run_phase(self.server, [BcastWorker(self.port, seqs)], timeout=self.p.timeout)

    def connections(self, n: int) -> PhaseRun:
        ws: list[Worker] = [
            ConnWorker(self.port, part, self.p.conc) for part in split(list(range(n)), self.p.procs)
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout, hold=True)

    def latency(self, users: list[int]) -> PhaseRun:
        return run_phase(
            self.server, latency_workers(self, users, LatencyWorker), timeout=self.p.timeout
        )

    def closed_loop(self, items: list[tuple[int, int]], inflight: int) -> PhaseRun:
        senders = [(f"w6s{k}", part) for k, part in enumerate(split(items, self.p.w6_conns))]
        ws: list[Worker] = [
            LoopWorker(self.port, part, inflight, 4 * self.p.conc)
            for part in split(senders, self.p.procs)
        ]
        return run_phase(self.server, ws, timeout=self.p.timeout)


def latency_workers(sysm: Any, users: list[int], cls: Any) -> list[Worker]:
    import random

    p = sysm.p
    rnd = random.Random(p.seed + 5)
    base = 800_000_000
    ws: list[Worker] = []
    for k in range(p.lat_senders):
        at = schedule(p.rate, p.lat_seconds, k, p.lat_senders)
        plan = [(base + k * 10_000_000 + i, rnd.choice(users)) for i in range(len(at))]
        ws.append(cls(sysm.port, f"lat{k}", plan, at, p.window))
    return ws
