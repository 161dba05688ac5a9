"""Request frames of protocol v1 and their decoding into typed objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from mailslot.protocol.errors import ErrorCode

PROTOCOL_VERSIONS = (1,)

# Integers a client may send: request ids and message ids are non-negative and fit in
# 63 bits (SQLite's and PostgreSQL's bigint); anything else is `malformed` before it
# reaches the store.
MAX_ID = 2**63 - 1
RequestId = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
MessageId = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
MAX_ACK_IDS = 1000


class _Request(msgspec.Struct, tag_field="op", kw_only=True):
    id: RequestId | None = None


class Hello(_Request, tag="hello"):
    version: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]


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
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)] | None = None
    after: MessageId = 0


class Ack(_Request, tag="ack"):
    ids: Annotated[list[MessageId], msgspec.Meta(max_length=MAX_ACK_IDS)]


class Passwd(_Request, tag="passwd"):
    old: str
    new: str


class Ping(_Request, tag="ping"):
    pass


class Bye(_Request, tag="bye"):
    pass


Request = Hello | Login | Users | Send | Check | Ack | Passwd | Ping | Bye
KNOWN_OPS = frozenset({"hello", "login", "users", "send", "check", "ack", "passwd", "ping", "bye"})


class _Envelope(msgspec.Struct):
    """Just enough of a bad frame to address the error reply."""

    id: RequestId | None = None
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
    """The request a line holds, or the reason it holds none. Never raises."""
    # msgspec does not check the UTF-8 of strings it skips (unknown fields) and lets
    # invalid UTF-8 in others escape as UnicodeDecodeError: check the whole line first.
    if not line.isascii():
        try:
            line.decode()
        except UnicodeDecodeError as error:
            readable = line.decode(errors="replace").encode()
            return BadFrame(
                ErrorCode.MALFORMED,
                f"the frame is not valid UTF-8 (byte {error.start})",
                _envelope(readable).id,
            )
    try:
        return _request_decoder.decode(line)
    except msgspec.DecodeError as error:
        return _explain(line, error)
    except RecursionError:
        return BadFrame(ErrorCode.MALFORMED, "the frame is nested too deeply")


def _envelope(line: bytes) -> _Envelope:
    try:
        return _envelope_decoder.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return _Envelope()


def _explain(line: bytes, error: msgspec.DecodeError) -> BadFrame:
    envelope = _envelope(line)
    if isinstance(envelope.op, str) and envelope.op not in KNOWN_OPS:
        return BadFrame(ErrorCode.UNKNOWN_OP, f"unknown op {envelope.op!r}", envelope.id)
    return BadFrame(ErrorCode.MALFORMED, f"the frame is not a valid request: {error}", envelope.id)
