"""What a session needs from its connection, and the TCP (optionally TLS) connection.

A session reads whole frames and writes newline-terminated frames; it never sees how
they travel. `TCPChannel` cuts a byte stream at newlines; the WebSocket channel
(server/ws.py) carries one frame per message. Both bound what they hold.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from mailslot.protocol import LineSplitter
from mailslot.server.throttle import source_of

READ_SIZE = 65_536
WRITE_HIGH_WATER = 64 * 1024  # above this, the session stops taking requests


class Channel(Protocol):
    async def read(self) -> list[bytes] | None:
        """The complete frames of the next arrival ([] for none yet); None at the end.
        Raises FrameTooLarge, with the frames before the oversized one."""
        ...

    def write(self, data: bytes) -> None:
        """Queue one or more newline-terminated frames."""
        ...

    def buffered(self) -> int:
        """Bytes queued and not yet taken by the peer."""
        ...

    async def drain(self) -> None:
        """Wait until the peer has taken most of what was queued."""
        ...

    def closing(self) -> bool: ...

    def close(self) -> None:
        """Close once what is queued has been sent."""
        ...

    def abort(self) -> None:
        """Close now, dropping what is queued."""
        ...


class TCPChannel:
    __slots__ = ("_reader", "_splitter", "_transport", "_writer")

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_frame: int
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._transport = writer.transport
        self._transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._splitter = LineSplitter(max_frame)

    async def read(self) -> list[bytes] | None:
        data = await self._reader.read(READ_SIZE)
        if not data:
            return None
        return self._splitter.feed(data)

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    def buffered(self) -> int:
        return self._transport.get_write_buffer_size()

    async def drain(self) -> None:
        await self._writer.drain()

    def closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()


def peer_and_source(address: object) -> tuple[str, str]:
    """A peer as logs show it (host:port), and the source address throttles count by."""
    if isinstance(address, tuple):
        host = str(address[0])
        peer = f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    else:
        host = peer = str(address)
    return peer, source_of(host)
