"""Mailslot over WebSocket (`GET /ws` on the HTTP side port): one protocol frame per text
message, carried to the very same Session as TCP connections, with the same admission,
limits and back-pressure. Browsers' cross-site requests are refused by their Origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from mailslot.protocol import FrameTooLarge
from mailslot.server.channel import peer_and_source

if TYPE_CHECKING:
    from mailslot.server.core import MailslotServer

log = logging.getLogger("mailslot.server")

CLOSE_GRACE = 5.0  # seconds to send what is queued before a closing socket is dropped


class WebSocketChannel:
    """A session's channel over one WebSocket. Frames are queued synchronously (pushes
    come from other sessions) and sent by a writer task, so what waits is counted."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, max_frame: int) -> None:
        self._ws = ws
        self._transport = request.transport
        self._max_frame = max_frame
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._closing = False
        self._writer = asyncio.create_task(self._send_queued(), name="mailslot-ws-writer")

    async def read(self) -> list[bytes] | None:
        message = await self._ws.receive()
        if message.type == WSMsgType.TEXT:
            data = message.data.encode()
        elif message.type == WSMsgType.BINARY:
            data = message.data  # decoded like a text frame: invalid UTF-8 is malformed
        else:  # close, error
            return None
        if len(data) >= self._max_frame:
            raise FrameTooLarge(self._max_frame)
        return [data] if data.strip() else []

    def write(self, data: bytes) -> None:
        for frame in data.split(b"\n")[:-1]:
            self._queue.append(frame)
            self._queued += len(frame)
        self._drained.clear()
        self._wake.set()

    def buffered(self) -> int:
        pending = self._transport.get_write_buffer_size() if self._transport else 0
        return self._queued + pending

    async def drain(self) -> None:
        await self._drained.wait()

    def closing(self) -> bool:
        return self._closing or self._ws.closed

    def close(self) -> None:
        self._closing = True
        self._wake.set()

    def abort(self) -> None:
        self._closing = True
        self._queue.clear()
        self._queued = 0
        if self._transport is not None:
            self._transport.abort()
        self._wake.set()

    async def finish(self) -> None:
        """Wait (a bounded time) for the writer to send what is queued and close."""
        self.close()
        try:
            await asyncio.wait_for(self._writer, CLOSE_GRACE)
        except TimeoutError:
            self.abort()

    async def _send_queued(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while True:
                while self._queue:
                    frame = self._queue.popleft()
                    self._queued -= len(frame)
                    await self._ws.send_str(frame.decode())
                self._drained.set()
                if self._closing:
                    break
                self._wake.clear()
                await self._wake.wait()
        self._drained.set()
        if not self._ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._ws.close()


def origin_allowed(request: web.Request, extra: str) -> bool:
    """A browser's WebSocket must come from a page of this server (or one configured):
    a cross-site page must not use a visitor's browser to speak to it. Clients that are
    not browsers send no Origin."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    own = f"{'https' if request.secure else 'http'}://{request.host}"
    allowed = {own.lower(), *(o.strip().lower().rstrip("/") for o in extra.split(",") if o)}
    return origin.lower().rstrip("/") in allowed


async def websocket(request: web.Request, server: MailslotServer) -> web.StreamResponse:
    if not origin_allowed(request, server.config.allowed_origins):
        peer, source = _peer(request)
        origin = request.headers["Origin"]
        server.connection_log.refused(
            source, "origin", f"refused a WebSocket from {peer}: origin {origin}"
        )
        return web.Response(status=403, text="this origin may not use this Mailslot server\n")
    limits = server.config.limits
    # Up to twice the frame limit is read and refused with too_large, like over TCP;
    # beyond that aiohttp closes the socket at once (1009, message too big).
    ws = web.WebSocketResponse(max_msg_size=2 * limits.max_frame, compress=False)
    await ws.prepare(request)
    peer, source = _peer(request)
    refusal = server.admit(peer, source)
    if refusal is not None:
        await ws.send_str(refusal.decode().rstrip("\n"))
        await ws.close()
        return ws
    channel = WebSocketChannel(ws, request, limits.max_frame)
    try:
        await server.serve(channel, peer, source)
    finally:
        await channel.finish()
    return ws


def _peer(request: web.Request) -> tuple[str, str]:
    transport = request.transport
    return peer_and_source(transport.get_extra_info("peername") if transport else request.remote)
