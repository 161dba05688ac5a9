"""Typed refusals: a request fails with an error code and a sentence, the connection goes on."""

from __future__ import annotations

from typing import Any

from mailslot.protocol import ErrorCode, ErrorReply, encode
from mailslot.server.metrics import errors_sent


class Refusal(Exception):
    """A request that fails with a typed error; the connection goes on."""

    def __init__(self, code: ErrorCode, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra

    def frame(self, request_id: int | None) -> bytes:
        return error_frame(request_id, self.code, str(self), **self.extra)


def rate_limited(why: str, wait: float, digits: int = 1) -> Refusal:
    """`rate_limited`: why, and in how many seconds to retry (the sentence and the
    `retry_after` field say the same)."""
    return Refusal(
        ErrorCode.RATE_LIMITED,
        f"{why}; retry in {wait:.{digits}f} seconds",
        retry_after=round(wait, 3),
    )


def error_frame(request_id: int | None, code: ErrorCode, message: str, **extra: Any) -> bytes:
    errors_sent[code] += 1
    return encode(ErrorReply(id=request_id, error=code, message=message, **extra))
