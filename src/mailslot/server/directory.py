"""The in-memory view of the username log: presence and queue sizes per user.

The store is the truth for names and messages; this keeps what routing needs
per request (lookups by key, online sessions, waiting counts) out of the
database and free of scans.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from mailslot.protocol import InvalidName, confusable_keys
from mailslot.server.throttle import TokenBucket
from mailslot.store import UserRecord

if TYPE_CHECKING:
    from mailslot.server.hub.base import Listener


@dataclass(slots=True, eq=False)
class UserState:
    record: UserRecord
    waiting: int = 0
    session: Listener | None = None  # logged in on this node
    node: str | None = None  # logged in on another node of the cluster: its name
    connected_since: datetime | None = None
    last_seen: datetime | None = None
    fanout: TokenBucket | None = None  # queue places this user's sends may still fill

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def online(self) -> bool:
        return self.session is not None or self.node is not None


class Directory:
    def __init__(self) -> None:
        self.by_key: dict[str, UserState] = {}
        self.by_id: dict[int, UserState] = {}
        # UTS #39 skeletons of every name, and of names being created right now, to the
        # key of the user who has it: a new name must not look like anyone else's (B13).
        self._looks: dict[str, str] = {}
        self._sorted: list[UserState] | None = None

    def add(self, record: UserRecord, waiting: int = 0) -> UserState:
        state = UserState(record, waiting)
        self.by_key[record.key] = state
        self.by_id[record.id] = state
        self._reserve(record.name, record.key)
        self._sorted = None
        return state

    def remove(self, state: UserState) -> None:
        """Forget a deleted user: its name, and names that look like it, become free."""
        key = state.record.key
        del self.by_key[key]
        del self.by_id[state.record.id]
        self._looks = {skeleton: k for skeleton, k in self._looks.items() if k != key}
        self._sorted = None

    def look_alike(self, name: str, key: str) -> str | None:
        """The name of another user (or one being created) that `name` looks like."""
        for skeleton in confusable_keys(name):
            owner = self._looks.get(skeleton)
            if owner is not None and owner != key:
                state = self.by_key.get(owner)
                return state.name if state is not None else owner
        return None

    def reserve(self, name: str, key: str) -> None:
        """Hold `name`'s looks while it is being created, so that two look-alikes racing
        to be created cannot both succeed; `add` or `release` ends the hold."""
        self._reserve(name, key)

    def release(self, name: str, key: str) -> None:
        if key in self.by_key:
            return
        for skeleton in confusable_keys(name):
            if self._looks.get(skeleton) == key:
                del self._looks[skeleton]

    def _reserve(self, name: str, key: str) -> None:
        try:
            skeletons = confusable_keys(name)
        except InvalidName:  # a name stored under older rules: it keeps its key only
            return
        for skeleton in skeletons:
            self._looks.setdefault(skeleton, key)

    def __len__(self) -> int:
        return len(self.by_key)

    def sorted(self) -> list[UserState]:
        if self._sorted is None:
            self._sorted = sorted(self.by_key.values(), key=lambda s: (s.record.key, s.name))
        return self._sorted

    def went_online(self, state: UserState, session: Listener, at: datetime) -> None:
        state.session = session
        state.connected_since = at

    def went_offline(self, state: UserState, at: datetime) -> None:
        state.session = None
        state.connected_since = None
        state.last_seen = at
