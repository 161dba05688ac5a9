"""The in-memory view of the username log: presence and queue sizes per user.

The store is the truth for names and messages; this keeps what routing needs
per request (lookups by key, online sessions, waiting counts) out of the
database and free of scans.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from mailslot.store import UserRecord

if TYPE_CHECKING:
    from mailslot.server.session import Session


@dataclass(slots=True, eq=False)
class UserState:
    record: UserRecord
    waiting: int = 0
    session: Session | None = None
    connected_since: datetime | None = None
    last_seen: datetime | None = None

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def online(self) -> bool:
        return self.session is not None


class Directory:
    def __init__(self) -> None:
        self.by_key: dict[str, UserState] = {}
        self._sorted: list[UserState] | None = None

    def add(self, record: UserRecord, waiting: int = 0) -> UserState:
        state = UserState(record, waiting)
        self.by_key[record.key] = state
        self._sorted = None
        return state

    def remove(self, state: UserState) -> None:
        del self.by_key[state.record.key]
        self._sorted = None

    def __len__(self) -> int:
        return len(self.by_key)

    def sorted(self) -> list[UserState]:
        if self._sorted is None:
            self._sorted = sorted(self.by_key.values(), key=lambda s: (s.record.key, s.name))
        return self._sorted

    def went_online(self, state: UserState, session: Session, at: datetime) -> None:
        state.session = session
        state.connected_since = at

    def went_offline(self, state: UserState, at: datetime) -> None:
        state.session = None
        state.connected_since = None
        state.last_seen = at
