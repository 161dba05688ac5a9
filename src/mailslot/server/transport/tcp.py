"""TCP (optionally TLS) connections as an asyncio.Protocol driving a session core.

Bytes are cut into frames in `data_received` and answered there: no task and no
StreamReader per connection. TLS is started per connection (`loop.start_tls`) rather
than by the listener, so that a failed handshake is seen, and logged per source,
instead of vanishing inside asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from typing import cast

from mailslot.protocol import FrameTooLarge, LineSplitter
from mailslot.server.context import SessionContext
from mailslot.server.session import WRITE_HIGH_WATER, Session
from mailslot.server.throttle import RepeatLog
from mailslot.server.transport import peer_and_source

RECHECK_WRITABLE = 0.01  # seconds; only if the buffer is full but writing is not paused


class TCPConnection(asyncio.Protocol):
    """One client connection: the transport side of its session (see session.Output)."""

    def __init__(
        self, context: SessionContext, tls: ssl.SSLContext | None, handshake_log: RepeatLog
    ) -> None:
        self._context = context
        self._tls = tls
        self._handshake_log = handshake_log
        self._transport: asyncio.Transport | None = None
        self._session: Session | None = None
        self._splitter: LineSplitter | None = None
        self._writing_paused = False
        self._writable_wanted = False
        self._lost = False
        self._handshake: asyncio.Task[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        peer, source = peer_and_source(transport.get_extra_info("peername"))
        refusal = self._context.connections.admit(peer, source)
        if refusal is not None:
            if self._tls is None:  # a TLS client could not read a plain-text error
                transport.write(refusal)
            transport.close()
            return
        if self._tls is None:
            self._open(transport, peer, source)
        else:
            # The client's hello must stay in the socket until start_tls takes over.
            transport.pause_reading()
            self._handshake = asyncio.get_running_loop().create_task(
                self._start_tls(transport, self._tls, peer, source)
            )

    def data_received(self, data: bytes) -> None:
        splitter, session = self._splitter, self._session
        if splitter is None or session is None:  # after a frame too large
            return
        try:
            frames = splitter.feed(data)
        except FrameTooLarge as error:
            self._splitter = None
            session.frame_too_large(error)
            return
        if frames:
            session.receive(frames)

    def eof_received(self) -> bool:
        if self._session is None:
            return False
        self._session.eof()
        return self._tls is None  # keep the socket open to write the replies due

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._session is not None:
            self._session.lost(exc)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._writable_wanted and self._session is not None:
            self._writable_wanted = False
            self._session.writable()

    # -- session.Output --------------------------------------------------------------

    def write(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    def buffered(self) -> int:
        assert self._transport is not None
        return self._transport.get_write_buffer_size()

    def closing(self) -> bool:
        assert self._transport is not None
        return self._transport.is_closing()

    def close(self) -> None:
        assert self._transport is not None
        self._transport.close()

    def abort(self) -> None:
        assert self._transport is not None
        self._transport.abort()

    def pause_reading(self) -> None:
        assert self._transport is not None
        if not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        assert self._transport is not None
        if not self._transport.is_closing():
            self._transport.resume_reading()

    def notify_writable(self) -> None:
        if self._writing_paused:
            self._writable_wanted = True
        elif self._session is not None:
            asyncio.get_running_loop().call_later(RECHECK_WRITABLE, self._session.writable)

    # -- set-up --------------------------------------------------------------------

    def _open(self, transport: asyncio.Transport, peer: str, source: str) -> None:
        self._transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._splitter = LineSplitter(self._context.limits.max_frame)
        self._session = Session(self._context, self, peer, source)
        self._session.start()

    async def _start_tls(
        self, transport: asyncio.Transport, tls: ssl.SSLContext, peer: str, source: str
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            secure = await loop.start_tls(
                transport,
                self,
                tls,
                server_side=True,
                ssl_handshake_timeout=self._context.limits.login_timeout,
            )
        except (ssl.SSLError, OSError, TimeoutError) as error:
            reason = getattr(error, "reason", None) or error.__class__.__name__
            self._handshake_log.refused(
                source, str(reason), f"TLS handshake with {peer} failed: {reason}"
            )
            transport.abort()
            self._context.connections.left_anonymous(source)
            return
        finally:
            self._handshake = None
        if secure is None or self._lost:  # gone right after the handshake
            transport.abort()
            self._context.connections.left_anonymous(source)
            return
        self._open(secure, peer, source)


async def listen(
    context: SessionContext,
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
    handshake_log: RepeatLog,
) -> asyncio.Server:
    """The listening socket; each connection gets a TCPConnection."""
    server = await asyncio.get_running_loop().create_server(
        lambda: TCPConnection(context, tls, handshake_log), host, port, backlog=1024
    )
    for sock in server.sockets:
        _keep_alive(sock)
    return server


# A client whose machine or network vanished sends no reset: probe it, so that its
# session (and in cluster mode its name) is freed in about 60 + 3 * 10 s, not only at
# the idle timeout. Set on the listening socket: connections accepted from it inherit
# the options (Linux), so a connection costs no system call for them.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 60, 10, 3


def _keep_alive(sock: socket.socket) -> None:
    with contextlib.suppress(OSError, AttributeError):  # TCP_KEEP* are Linux/BSD names
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_COUNT)
