"""What the client library hands to applications."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mailslot.protocol import (
    MailEvent,
    NewUserEvent,
    OfflineEvent,
    OnlineEvent,
    PushEvent,
    QueuedMessage,
    WelcomeEvent,
    parse_time,
)


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
    def from_welcome(cls, welcome: WelcomeEvent) -> ServerInfo:
        """The server's greeting; its limits are the server's own, never assumed here."""
        limits = welcome.limits
        return cls(
            server=welcome.server,
            versions=welcome.versions,
            auth="none" if welcome.auth == "none" else "password",
            max_text=limits.max_text,
            max_recipients=limits.max_recipients,
            max_frame=limits.max_frame,
            max_batch=limits.max_batch,
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
    def from_wire(cls, item: QueuedMessage) -> Message:
        return cls(item.id, item.sender, parse_time(item.at), item.text)


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


def event_from_push(push: PushEvent) -> Event | None:
    """What a push event means to an application, or None for those it is not told of
    (the greeting, and `closing`, which ends in Disconnected)."""
    match push:
        case MailEvent(waiting=waiting):
            return MailWaiting(waiting)
        case OnlineEvent(user=user):
            return UserOnline(user)
        case OfflineEvent(user=user):
            return UserOffline(user)
        case NewUserEvent(user=user):
            return UserNew(user)
    return None
