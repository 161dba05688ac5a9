"""Line framing and JSON encoding, with no I/O (sans-IO)."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from typing import Any

import msgspec

DEFAULT_PORT = 7777
DEFAULT_MAX_FRAME = 65_536
CLIENT_MAX_FRAME = 16 * 1024 * 1024


class FrameTooLarge(Exception):
    """A line over the bound; `frames` holds the complete lines that came before it in
    the same data, so that they can still be answered."""

    def __init__(self, limit: int, frames: list[bytes] | None = None) -> None:
        super().__init__(f"a frame may be at most {limit} bytes")
        self.limit = limit
        self.frames = frames or []


class LineSplitter:
    """Cuts a byte stream into frames at newlines, refusing frames above a size bound."""

    __slots__ = ("_buffer", "_max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._buffer = b""
        self._max_frame = max_frame

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held back."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Every complete non-blank line in the stream so far, without its line ending.

        Raises FrameTooLarge when a line (complete or not) exceeds the bound.
        """
        buffer = self._buffer + data if self._buffer else data
        if b"\n" not in data:
            self._buffer = buffer
            self._check(buffer, [])
            return []
        *lines, self._buffer = buffer.split(b"\n")
        frames: list[bytes] = []
        for line in lines:
            if len(line) >= self._max_frame:
                raise FrameTooLarge(self._max_frame, frames)
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.strip():
                frames.append(line)
        self._check(self._buffer, frames)
        return frames

    def _check(self, partial: bytes, frames: list[bytes]) -> None:
        if len(partial) >= self._max_frame:
            raise FrameTooLarge(self._max_frame, frames)


_encoder = msgspec.json.Encoder()


def encode(frame: msgspec.Struct | dict[str, Any]) -> bytes:
    """One frame, newline included: a reply or event struct (protocol.replies), or a dict."""
    return _encoder.encode(frame) + b"\n"


def now_micros() -> int:
    """The time as the protocol counts it: microseconds since the epoch, UTC."""
    return time.time_ns() // 1000


def format_time(micros: int) -> str:
    """A server timestamp (microseconds since the epoch, UTC) as ISO 8601 with 'Z'."""
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{_format_second(seconds)}.{fraction:06d}Z"


@functools.lru_cache(maxsize=4096)
def _format_second(seconds: int) -> str:
    # Messages arrive in bursts within the same second: format each second once.
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
