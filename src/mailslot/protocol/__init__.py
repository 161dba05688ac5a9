"""Mailslot wire protocol v1: frames, framing, error codes and names. Pure code, no I/O."""

from mailslot.protocol.codec import (
    CLIENT_MAX_FRAME,
    DEFAULT_MAX_FRAME,
    DEFAULT_PORT,
    FrameTooLarge,
    LineSplitter,
    decode_frame,
    encode,
    format_time,
    parse_time,
)
from mailslot.protocol.errors import CloseReason, ErrorCode
from mailslot.protocol.frames import (
    PROTOCOL_VERSIONS,
    Ack,
    BadFrame,
    Bye,
    Check,
    Hello,
    Login,
    Ping,
    Request,
    Send,
    Users,
    decode_request,
)
from mailslot.protocol.names import MAX_NAME_LENGTH, InvalidName, display_name, name_key

__all__ = [
    "CLIENT_MAX_FRAME",
    "DEFAULT_MAX_FRAME",
    "DEFAULT_PORT",
    "MAX_NAME_LENGTH",
    "PROTOCOL_VERSIONS",
    "Ack",
    "BadFrame",
    "Bye",
    "Check",
    "CloseReason",
    "ErrorCode",
    "FrameTooLarge",
    "Hello",
    "InvalidName",
    "LineSplitter",
    "Login",
    "Ping",
    "Request",
    "Send",
    "Users",
    "decode_frame",
    "decode_request",
    "display_name",
    "encode",
    "format_time",
    "name_key",
    "parse_time",
]
