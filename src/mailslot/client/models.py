"""What the client library hands to applications."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from mailslot.protocol import parse_time


@dataclass(frozen=True, slots=True)
class ServerInfo:
    server: str
    versions: list[int]
    auth: Literal["password", "none"]
    max_text: int
    max_recipients: int
    max_frame: int
    max_batch: int

    @classmethod
    def from_welcome(cls, frame: dict[str, Any]) -> ServerInfo:
        """The server's greeting; its limits are the server's own, never assumed here."""
        limits = frame.get("limits")
        names = ("max_text", "max_recipients", "max_frame", "max_batch")
        if not isinstance(limits, dict) or not all(isinstance(limits.get(n), int) for n in names):
            raise ValueError("the greeting does not state the server's limits")
        return cls(
            server=str(frame.get("server", "")),
            versions=[int(v) for v in frame.get("versions", [1])],
            auth="none" if frame.get("auth") == "none" else "password",
            max_text=limits["max_text"],
            max_recipients=limits["max_recipients"],
            max_frame=limits["max_frame"],
            max_batch=limits["max_batch"],
        )


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: str
    created: bool
    waiting: int


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    online: bool


@dataclass(frozen=True, slots=True)
class SendResult:
    id: int
    at: datetime  # server reception time, UTC
    recipients: int


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    sender: str
    received_at: datetime  # server reception time, UTC
    text: str

    @classmethod
    def from_wire(cls, item: dict[str, Any]) -> Message:
        return cls(int(item["id"]), str(item["from"]), parse_time(item["at"]), str(item["text"]))


@dataclass(frozen=True, slots=True)
class MailWaiting:
    waiting: int


@dataclass(frozen=True, slots=True)
class UserOnline:
    name: str


@dataclass(frozen=True, slots=True)
class UserOffline:
    name: str


@dataclass(frozen=True, slots=True)
class UserNew:
    name: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str


Event = MailWaiting | UserOnline | UserOffline | UserNew | Disconnected


def event_from_frame(frame: dict[str, Any]) -> Event | None:
    """The push event a frame carries, or None for events this client does not know."""
    match frame.get("event"):
        case "mail":
            return MailWaiting(int(frame.get("waiting", 0)))
        case "online":
            return UserOnline(str(frame.get("user")))
        case "offline":
            return UserOffline(str(frame.get("user")))
        case "new_user":
            return UserNew(str(frame.get("user")))
    return None
