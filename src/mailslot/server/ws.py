"""Mailslot over WebSocket (`GET /ws` on the HTTP side port): one protocol frame per text
message, carried to the very same session core as TCP connections, with the same admission,
limits and back-pressure. Browsers' cross-site requests are refused by their Origin.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from mailslot.protocol import FrameTooLarge
from mailslot.server.session import Session
from mailslot.server.transport import peer_and_source

if TYPE_CHECKING:
    from mailslot.server.core import MailslotServer

log = logging.getLogger("mailslot.server")

CLOSE_GRACE = 5.0  # seconds for the closing handshake before the socket is dropped
DRAINED = 16 * 1024  # a slow reader has caught up when this little waits for it
DRAIN_POLL = 0.01  # seconds between looks while a slow reader catches up


class WebSocketTransport:
    """A session's output over one WebSocket (see session.Output), and the loop that
    reads its messages. Frames go straight to the socket as WebSocket text frames,
    written synchronously like TCP writes (pushes come from other sessions): no queue
    and no writer task per connection, so an idle browser costs little more than an
    idle TCP client."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        assert request.transport is not None
        self._ws = ws
        self._transport = request.transport
        self._closing = False
        self._closer: asyncio.Task[bool] | None = None
        self._readable = asyncio.Event()
        self._readable.set()
        self.session: Session | None = None

    async def run(self, session: Session, max_frame: int) -> None:
        """Feed the session each message until the WebSocket ends."""
        self.session = session
        session.start()
        error: BaseException | None = None
        try:
            while True:
                await self._readable.wait()
                message = await self._ws.receive()
                if message.type == WSMsgType.TEXT:
                    data = message.data.encode()
                elif message.type == WSMsgType.BINARY:
                    data = message.data  # decoded like a text frame: invalid UTF-8 is malformed
                else:  # close, closing, error
                    break
                if len(data) >= max_frame:
                    session.frame_too_large(FrameTooLarge(max_frame))
                elif data.strip():
                    session.receive([data])
        except (ConnectionError, OSError) as lost:
            error = lost
        finally:
            session.lost(error)

    def write(self, data: bytes) -> None:
        if self.closing():
            return
        # Whole frames only, and compression off: the bytes are the same as aiohttp's
        # writer would send, written where it would write them.
        self._transport.writelines(_text_frame(frame) for frame in data.split(b"\n")[:-1])

    def buffered(self) -> int:
        return self._transport.get_write_buffer_size()

    def closing(self) -> bool:
        return self._closing or self._ws.closed or self._transport.is_closing()

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._readable.set()
            self._closer = asyncio.create_task(self._ws.close(), name="mailslot-ws-close")

    def abort(self) -> None:
        self._closing = True
        self._readable.set()
        self._transport.abort()

    def pause_reading(self) -> None:
        self._readable.clear()

    def resume_reading(self) -> None:
        self._readable.set()

    def notify_writable(self) -> None:
        # aiohttp keeps the transport's flow control to itself: look now and then
        if self.buffered() <= DRAINED or self._transport.is_closing():
            if self.session is not None:
                self.session.writable()
            return
        asyncio.get_running_loop().call_later(DRAIN_POLL, self.notify_writable)

    async def finish(self) -> None:
        """Wait (a bounded time) for the closing handshake."""
        self.close()
        if self._closer is None:  # aborted: nothing to wait for
            return
        try:
            await asyncio.wait_for(self._closer, CLOSE_GRACE)
        except (TimeoutError, ConnectionError, RuntimeError):
            self._transport.abort()


def _text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (RFC 6455 5.2), as a server sends it."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 65_536:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


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
    transport = WebSocketTransport(ws, request)
    try:
        await transport.run(Session(server.context, transport, peer, source), limits.max_frame)
    finally:
        await transport.finish()
    return ws


def _peer(request: web.Request) -> tuple[str, str]:
    transport = request.transport
    return peer_and_source(transport.get_extra_info("peername") if transport else request.remote)
