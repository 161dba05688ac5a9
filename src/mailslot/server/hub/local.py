"""The in-process hub: one node's users, claims, presence watchers and mail pushes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from mailslot.protocol import MailEvent, NewUserEvent, OfflineEvent, OnlineEvent, encode
from mailslot.server.directory import Directory, UserState
from mailslot.server.events import EventFeed
from mailslot.server.hub.base import Listener
from mailslot.server.metrics import ServerMetrics
from mailslot.server.throttle import LoginThrottles

log = logging.getLogger("mailslot.server")


class LocalHub:
    def __init__(
        self, events: EventFeed, metrics: ServerMetrics, throttles: LoginThrottles
    ) -> None:
        self.directory = Directory()
        self.events = events
        self.metrics = metrics
        self.throttles = throttles
        self.claims: dict[str, Listener] = {}  # names logged in, or logging in, here
        self.watchers: set[Listener] = set()  # logged in here and asking for presence events
        self.delivered_total = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def trouble(self) -> str | None:
        return None

    # -- names -----------------------------------------------------------------------------

    async def find(self, key: str) -> UserState | None:
        return self.directory.by_key.get(key)

    async def catch_up(self) -> bool:
        return False

    def user_created(self, state: UserState, source: str) -> None:
        self.events.publish("user_created", user=state.name)

    def user_deleted(self, state: UserState) -> None:
        self.directory.remove(state)

    def password_set(self, state: UserState, password_hash: str) -> None:
        state.record = replace(state.record, password_hash=password_hash)
        log.info("password set for %r", state.name)

    # -- claims and presence ------------------------------------------------------------------

    def claimed(self, key: str) -> bool:
        return key in self.claims

    def hold(self, key: str, listener: Listener) -> None:
        self.claims[key] = listener

    async def claim(self, state: UserState, listener: Listener) -> bool:
        return True

    def unhold(self, key: str, listener: Listener) -> None:
        if self.claims.get(key) is listener:
            del self.claims[key]

    def logged_in(self, state: UserState, listener: Listener, created: bool) -> None:
        self.directory.went_online(state, listener, datetime.now(UTC))
        if listener.presence:
            self.watchers.add(listener)
        if created:
            self.broadcast(encode(NewUserEvent(user=state.name)), listener)
        self.broadcast(encode(OnlineEvent(user=state.name)), listener)

    def logged_out(self, state: UserState, listener: Listener) -> None:
        self.watchers.discard(listener)
        self.unhold(state.record.key, listener)
        if state.session is listener:
            self.directory.went_offline(state, datetime.now(UTC))
            self.broadcast(encode(OfflineEvent(user=state.name)), listener)

    def broadcast(self, frame: bytes, origin: Listener | None = None) -> None:
        for listener in self.watchers:
            if listener is not origin:
                listener.push(frame)

    # -- mail ------------------------------------------------------------------------------

    def delivered(self, recipients: Sequence[UserState]) -> None:
        self.metrics.enqueued += len(recipients)
        for state in recipients:
            self.queued(state, 1)

    def queued(self, state: UserState, count: int) -> None:
        """`count` more messages wait for the user: tell its session, if it is here."""
        state.waiting += count
        if state.session is not None:
            state.session.push(encode(MailEvent(waiting=state.waiting)))

    def acknowledged(self, state: UserState, count: int) -> None:
        if not count:
            return
        state.waiting = max(0, state.waiting - count)
        self.metrics.acked += count
        self.delivered_total += count
        self.events.publish("delivered", user=state.name, count=count)

    # -- throttles ----------------------------------------------------------------------------

    def login_failed(self, source: str, key: str) -> None:
        self.throttles.failed(source, key)
