"""Request frames of protocol v1 and their decoding into typed objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from mailslot.protocol.errors import ErrorCode

PROTOCOL_VERSIONS = (1,)


class _Request(msgspec.Struct, tag_field="op", kw_only=True):
    id: int | None = None


class Hello(_Request, tag="hello"):
    version: int


class Login(_Request, tag="login"):
    user: str
    password: str | None = None
    presence: bool = True


class Users(_Request, tag="users"):
    pass


class Send(_Request, tag="send"):
    mode: Literal["one", "many", "all"]
    text: str
    to: list[str] = msgspec.field(default_factory=list)


class Check(_Request, tag="check"):
    limit: int | None = None
    after: int = 0


class Ack(_Request, tag="ack"):
    ids: list[int]


class Ping(_Request, tag="ping"):
    pass


class Bye(_Request, tag="bye"):
    pass


Request = Hello | Login | Users | Send | Check | Ack | Ping | Bye
KNOWN_OPS = frozenset({"hello", "login", "users", "send", "check", "ack", "ping", "bye"})


class _Envelope(msgspec.Struct):
    """Just enough of a bad frame to address the error reply."""

    id: int | None = None
    op: Any = None


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A line that is not a valid request; `id` is echoed when it could be read."""

    code: ErrorCode
    message: str
    id: int | None = None


_request_decoder: msgspec.json.Decoder[Request] = msgspec.json.Decoder(Request)
_envelope_decoder = msgspec.json.Decoder(_Envelope)


def decode_request(line: bytes) -> Request | BadFrame:
    try:
        return _request_decoder.decode(line)
    except msgspec.DecodeError as error:
        return _explain(line, error)
    except RecursionError:
        return BadFrame(ErrorCode.MALFORMED, "the frame is nested too deeply")


def _explain(line: bytes, error: msgspec.DecodeError) -> BadFrame:
    try:
        envelope = _envelope_decoder.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return BadFrame(ErrorCode.MALFORMED, f"the frame is not a valid request: {error}")
    if isinstance(envelope.op, str) and envelope.op not in KNOWN_OPS:
        return BadFrame(ErrorCode.UNKNOWN_OP, f"unknown op {envelope.op!r}", envelope.id)
    return BadFrame(ErrorCode.MALFORMED, f"the frame is not a valid request: {error}", envelope.id)
