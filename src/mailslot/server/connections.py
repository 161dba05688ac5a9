"""The connections of one node: admission (B13 caps) and the log of who came and went."""

from __future__ import annotations

import logging
import time
from typing import Protocol

from mailslot.protocol import CloseReason, ErrorCode
from mailslot.server.config import Limits
from mailslot.server.directory import UserState
from mailslot.server.events import EventFeed
from mailslot.server.metrics import ServerMetrics
from mailslot.server.refusal import error_frame
from mailslot.server.throttle import RepeatLog

log = logging.getLogger("mailslot.server")


class Connection(Protocol):
    user: UserState | None
    peer: str
    source: str
    connected_at: float
    last_activity: float
    close_reason: str | None

    def close(self, reason: str | None = None) -> None: ...


class Connections:
    def __init__(
        self, limits: Limits, metrics: ServerMetrics, events: EventFeed, refused: RepeatLog
    ) -> None:
        self.limits = limits
        self.metrics = metrics
        self.events = events
        self.refused = refused
        self.open: set[Connection] = set()
        self.anonymous: dict[str, int] = {}  # connections not logged in, per source

    def __len__(self) -> int:
        return len(self.open)

    def admit(self, peer: str, source: str) -> bytes | None:
        """Count a new connection as one that has not logged in yet; or, if it is refused,
        the error frame that says why (logged once per source per interval)."""
        refusal = self._refusal(source)
        if refusal is None:
            self.anonymous[source] = self.anonymous.get(source, 0) + 1
            return None
        self.metrics.connections_refused[ErrorCode.SERVER_BUSY] += 1
        self.refused.refused(source, "server_busy", f"rejected {peer}: {refusal}")
        self.events.publish("rejected", peer=peer, detail=ErrorCode.SERVER_BUSY)
        return error_frame(None, ErrorCode.SERVER_BUSY, refusal)

    def _refusal(self, source: str) -> str | None:
        if len(self.open) >= self.limits.max_connections:
            return "the server is full; try again later"
        per_source = self.limits.max_anonymous_per_source
        if per_source and self.anonymous.get(source, 0) >= per_source:
            return (
                f"{per_source} connections from your address have not logged in yet; "
                "log in on those or close them first"
            )
        return None

    def left_anonymous(self, source: str) -> None:
        """An admitted connection logged in, or ended (or never started) without."""
        left = self.anonymous.get(source, 0) - 1
        if left > 0:
            self.anonymous[source] = left
        else:
            self.anonymous.pop(source, None)

    def opened(self, connection: Connection) -> None:
        self.open.add(connection)
        self.metrics.connections_accepted += 1
        log.info("connection from %s", connection.peer)
        self.events.publish("connected", peer=connection.peer)

    def closed(self, connection: Connection) -> None:
        self.open.discard(connection)
        reason = connection.close_reason or "closed"
        user = connection.user
        if user is None:
            self.left_anonymous(connection.source)
            log.info("disconnect %s (%s)", connection.peer, reason)
            self.events.publish("disconnected", peer=connection.peer, detail=reason)
            return
        log.info("disconnect %r %s (%s)", user.name, connection.peer, reason)
        self.events.publish("disconnected", user=user.name, peer=connection.peer, detail=reason)

    def close_all(self, reason: CloseReason) -> None:
        for connection in list(self.open):
            connection.close(reason)

    def sweep(self) -> None:
        """Close connections idle too long, or not logged in in time."""
        now = time.monotonic()
        idle_since = now - self.limits.idle_timeout
        login_since = now - self.limits.login_timeout
        for connection in list(self.open):
            if connection.user is None and connection.connected_at < login_since:
                connection.close(CloseReason.LOGIN_TIMEOUT)
            elif connection.last_activity < idle_since:
                connection.close(CloseReason.IDLE)
