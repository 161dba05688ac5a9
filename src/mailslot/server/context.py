"""What every session of a node shares, built once by MailslotServer: the parts a
session talks to, and never a way back to the server itself."""

from __future__ import annotations

from dataclasses import dataclass

from mailslot.server.accounts import Accounts
from mailslot.server.config import Limits
from mailslot.server.connections import Connections
from mailslot.server.events import EventFeed
from mailslot.server.hub.base import Hub
from mailslot.server.metrics import ServerMetrics
from mailslot.server.throttle import RepeatLog
from mailslot.store import Store


@dataclass(frozen=True, slots=True)
class SessionContext:
    software: str  # name/version in the welcome event
    auth: str
    limits: Limits
    store: Store
    hub: Hub
    accounts: Accounts
    connections: Connections
    metrics: ServerMetrics
    events: EventFeed
    refusal_log: RepeatLog  # refused logins, summarised per source
    slow_consumer_log: RepeatLog
