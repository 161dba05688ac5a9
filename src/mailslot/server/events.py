"""The in-process event feed the server dashboard watches (S15–S17)."""

from __future__ import annotations

import queue
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """kind: listening, connected, login, rejected, disconnected, user_created,
    enqueued, delivered, stopped. `detail` never holds message text."""

    kind: str
    at: datetime
    user: str | None = None
    peer: str | None = None
    detail: str = ""
    count: int = 0


class EventFeed:
    def __init__(self) -> None:
        self._subscribers: list[queue.SimpleQueue[ServerEvent]] = []

    def subscribe(self) -> queue.SimpleQueue[ServerEvent]:
        """A thread-safe queue that receives every event from now on."""
        subscriber: queue.SimpleQueue[ServerEvent] = queue.SimpleQueue()
        self._subscribers = [*self._subscribers, subscriber]
        return subscriber

    def unsubscribe(self, subscriber: queue.SimpleQueue[ServerEvent]) -> None:
        self._subscribers = [s for s in self._subscribers if s is not subscriber]

    @property
    def watched(self) -> bool:
        return bool(self._subscribers)

    def publish(
        self,
        kind: str,
        *,
        user: str | None = None,
        peer: str | None = None,
        detail: str = "",
        count: int = 0,
    ) -> None:
        if not self._subscribers:
            return
        event = ServerEvent(kind, datetime.now(UTC), user, peer, detail, count)
        for subscriber in self._subscribers:
            subscriber.put(event)
