"""The Mailslot server: asyncio, one task per connection, no GUI toolkit (B7)."""

from mailslot.protocol import DEFAULT_PORT
from mailslot.server.config import Limits, ServerConfig, StartupError, default_data_dir
from mailslot.server.core import MailslotServer, ServerSnapshot, UserRow
from mailslot.server.events import EventFeed, ServerEvent
from mailslot.server.thread import ServerThread

__all__ = [
    "DEFAULT_PORT",
    "EventFeed",
    "Limits",
    "MailslotServer",
    "ServerConfig",
    "ServerEvent",
    "ServerSnapshot",
    "ServerThread",
    "StartupError",
    "UserRow",
    "default_data_dir",
]
