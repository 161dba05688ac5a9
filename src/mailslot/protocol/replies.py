"""Reply and event frames of protocol v1 as msgspec structs: the server encodes them, the
client decodes them, and docs/protocol.md describes the bytes they make.

Field order is wire order. Every reply carries `id` (null when the request's id could not
be read) and `ok`; an error reply's extra fields are `UNSET` unless its code has them, and
msgspec leaves `UNSET` fields out of the encoding. The structs are untracked by the cyclic
garbage collector: they hold no cycles, and the server builds one per reply.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar, get_args

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "EVENT_NAMES",
    "AckOk",
    "ByeOk",
    "CheckOk",
    "ClosingEvent",
    "ErrorReply",
    "FrameHead",
    "HelloOk",
    "LoginOk",
    "MailEvent",
    "NewUserEvent",
    "OfflineEvent",
    "OnlineEvent",
    "PasswdOk",
    "PingOk",
    "PushEvent",
    "QueuedMessage",
    "SendOk",
    "UserEntry",
    "UsersOk",
    "WelcomeEvent",
    "WelcomeLimits",
    "decode_as",
    "decode_event",
]

T = TypeVar("T")
M = TypeVar("M")


class _Frame(msgspec.Struct, gc=False):
    pass


# -- replies -------------------------------------------------------------------------


class _Reply(_Frame, kw_only=True):
    id: int | None


class _Ok(_Reply, kw_only=True):
    ok: Literal[True] = True


class HelloOk(_Ok, kw_only=True):
    version: int


class LoginOk(_Ok, kw_only=True):
    user: str  # the name as first registered
    created: bool
    waiting: int


class UserEntry(_Frame, kw_only=True):
    name: str
    online: bool


class UsersOk(_Ok, kw_only=True):
    users: list[UserEntry]


class SendOk(_Ok, kw_only=True):
    msg: int
    at: str  # format_time() of the reception time
    recipients: int


class QueuedMessage(_Frame, kw_only=True):
    """One message of a check reply."""

    id: int
    sender: str = msgspec.field(name="from")
    at: str
    text: str


class CheckOk(_Ok, Generic[M], kw_only=True):
    """`CheckOk[msgspec.Raw]` for a server that encodes each message once (to size the
    reply as it goes); `CheckOk[QueuedMessage]` to decode."""

    messages: list[M]
    more: bool
    none: bool


class AckOk(_Ok, kw_only=True):
    deleted: int
    waiting: int


class PasswdOk(_Ok, kw_only=True):
    pass


class PingOk(_Ok, kw_only=True):
    pong: Literal[True] = True


class ByeOk(_Ok, kw_only=True):
    bye: Literal[True] = True


class ErrorReply(_Reply, kw_only=True):
    """`error` is an ErrorCode on the server; a client takes any string, as codes may be
    added. The extra fields belong to the codes docs/protocol.md lists them with."""

    ok: Literal[False] = False
    error: str
    message: str
    max: int | UnsetType = UNSET  # text_too_long, too_many_recipients, too_large
    retry_after: float | UnsetType = UNSET  # rate_limited, in seconds
    names: list[str] | UnsetType = UNSET  # unknown_recipient
    versions: list[int] | UnsetType = UNSET  # unsupported_version
    like: str | UnsetType = UNSET  # confusable_username: the existing name
    new: bool | UnsetType = UNSET  # password_required: the name was never used

    @property
    def extra(self) -> dict[str, object]:
        """The extra fields this error carries, by wire name."""
        return {
            name: value for name in _ERROR_EXTRAS if (value := getattr(self, name)) is not UNSET
        }


_ERROR_EXTRAS = ErrorReply.__struct_fields__[ErrorReply.__struct_fields__.index("message") + 1 :]


# -- events ----------------------------------------------------------------------------


class _Event(_Frame, tag_field="event", kw_only=True):
    pass


class WelcomeLimits(_Frame, kw_only=True):
    max_frame: int
    max_text: int
    max_recipients: int
    max_batch: int


class WelcomeEvent(_Event, tag="welcome", kw_only=True):
    # The defaults are what a client assumes of a terse server; limits it never assumes.
    server: str = ""
    versions: list[int] = msgspec.field(default_factory=lambda: [1])
    auth: str = "password"
    limits: WelcomeLimits


class MailEvent(_Event, tag="mail", kw_only=True):
    waiting: int


class OnlineEvent(_Event, tag="online", kw_only=True):
    user: str


class OfflineEvent(_Event, tag="offline", kw_only=True):
    user: str


class NewUserEvent(_Event, tag="new_user", kw_only=True):
    user: str


class ClosingEvent(_Event, tag="closing", kw_only=True):
    reason: str  # a CloseReason; a client takes any string


PushEvent = WelcomeEvent | MailEvent | OnlineEvent | OfflineEvent | NewUserEvent | ClosingEvent
EVENT_NAMES = frozenset(str(cls.__struct_config__.tag) for cls in get_args(PushEvent))


# -- decoding (client side) -------------------------------------------------------------


class FrameHead(msgspec.Struct, gc=False):
    """What a frame from the server is: an event (`event`), or the reply to request `id`.
    Read first, so that the rest is decoded only into the type it should have."""

    id: int | None = None
    ok: bool | None = None
    event: str | None = None


# A decoder per type: several times quicker than msgspec.json.decode(type=) on a generic
# like CheckOk[QueuedMessage]. The client asks for a handful of types, so it stays small.
_decoders: dict[object, msgspec.json.Decoder[Any]] = {}
_event_decoder: msgspec.json.Decoder[PushEvent] = msgspec.json.Decoder(PushEvent)


def decode_as(line: bytes, kind: type[T]) -> T:
    """A frame from the server as `kind`; ValueError, whose sentence says what is wrong (and
    where: "... - at `$.limits.max_text`"), when it is not JSON or not of that shape. Fields
    a type does not know are ignored (protocol v1)."""
    decoder: msgspec.json.Decoder[T] | None = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    return _decode(decoder, line)


def decode_event(line: bytes) -> PushEvent:
    """An event frame whose `event` is one of EVENT_NAMES; ValueError as for decode_as."""
    return _decode(_event_decoder, line)


def _decode(decoder: msgspec.json.Decoder[T], line: bytes) -> T:
    try:
        return decoder.decode(line)
    except msgspec.DecodeError as error:  # ValidationError included
        raise ValueError(str(error)) from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
