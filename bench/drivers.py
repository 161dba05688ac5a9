"""Pieces the system drivers (``sys_*.py``) share.

A client connection that queues its writes and sends them in one ``flush()``;
W4's worker that opens a connection per user and holds them all; W5's pacing
(send at the scheduled time, then wait for the window to empty).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Generic, Protocol, Self, TypeVar

from bench.base import Result, now
from bench.harness import Worker, bounded_gather

HOST = "127.0.0.1"


class BufferedConn(asyncio.Protocol):
    """A client connection to ``HOST``: writes wait in ``out`` until ``flush()``.

    ``flush()`` sends them in one write, or one write each when ``write_each`` is set
    (as an interactive client does: W6/W6p).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.out: list[bytes] = []
        self.write_each = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, port: int) -> Self:
        _, proto = await asyncio.get_running_loop().create_connection(cls, HOST, port)
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def flush(self) -> None:
        t = self.transport
        if self.out and t is not None and not t.is_closing():
            if self.write_each:
                for frame in self.out:
                    t.write(frame)
            else:
                t.write(b"".join(self.out))
        self.out.clear()

    async def wait_closed(self) -> None:
        """Wait (5 s at most) until the connection is lost; never raises."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self.closed), 5)


C = TypeVar("C")


class HoldWorker(Worker, Generic[C]):
    """W4: connect once per user, ``conc`` at a time, and hold every connection until close()."""

    def __init__(self, port: int, users: list[int], conc: int) -> None:
        self.port, self.users, self.conc = port, users, conc
        self.conns: list[C] = []

    async def connect(self, u: int) -> C:
        """Open (and log in, where the system has logins) the connection of user ``u``."""
        raise NotImplementedError

    def drop(self, c: C) -> None:
        """Start closing ``c``."""
        raise NotImplementedError

    async def one(self, u: int) -> None:
        self.conns.append(await self.connect(u))

    async def run(self) -> Result:
        await bounded_gather([self.one(u) for u in self.users], self.conc)
        return {"connected": len(self.conns)}

    async def close(self) -> None:
        for c in self.conns:
            self.drop(c)
        await asyncio.sleep(0.2)


async def sleep_until(t: float) -> None:
    """Sleep until ``now() == t``; return at once if that time has passed."""
    delay = t - now()
    if delay > 0:
        await asyncio.sleep(delay)


class Window(Protocol):
    """A window of requests in flight (Mailslot's Pipeline, MQTT's Publisher)."""

    idle: asyncio.Future[None]  # resolved by fill() once nothing is queued or in flight

    @property
    def inflight(self) -> object: ...  # true while replies are outstanding

    def fill(self) -> None: ...


async def settle(win: Window, seconds: float) -> None:
    """Wait until ``win`` has nothing in flight, or ``seconds`` have passed."""
    deadline = now() + seconds
    while win.inflight and now() < deadline:
        win.idle = asyncio.get_running_loop().create_future()
        win.fill()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(win.idle, max(0.01, deadline - now()))
