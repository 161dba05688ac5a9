"""The cluster hub: several nodes on one PostgreSQL database act as one server.

- Claims: a login holds an advisory lock on this node's own connection (ClusterLink),
  so a name is logged in once cluster-wide, and a dead node's names come free when
  PostgreSQL drops its connection.
- Users: created through the shared `users` table; a node learns of them from a
  "new" notice, and looks in the table itself before it refuses a name or sends to
  all (catch_up), so it never waits for a notice to be right.
- Notices between nodes (NOTIFY, after the commits they tell about, coalesced per
  turn of the event loop): presence, new users, deleted users, failed logins, and
  per group commit the queue places filled and emptied — which keeps every node's
  waiting counts and its users' "new mail" pushes up to date.
- Presence of the other nodes is also read from pg_locks every PRESENCE_PERIOD: that
  is how a node that died without a word is seen to be gone.
- Losing the connection loses the claims: the sessions logged in here are closed
  with `unavailable` (their clients log in again, here or elsewhere), logins are
  refused with `unavailable` until the link is back, and the node reconnects with
  back-off and reads the whole picture again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from mailslot.protocol import (
    CloseReason,
    NewUserEvent,
    OfflineEvent,
    OnlineEvent,
    encode,
    now_micros,
)
from mailslot.server.directory import UserState
from mailslot.server.events import EventFeed
from mailslot.server.hub.base import Listener
from mailslot.server.hub.local import LocalHub
from mailslot.server.metrics import ServerMetrics
from mailslot.server.throttle import LoginThrottles
from mailslot.store import StoreError, UserRecord
from mailslot.store.cluster import ClusterLink

log = logging.getLogger("mailslot.server")

PRESENCE_PERIOD = 2.0  # seconds between reads of who is logged in on other nodes
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 10.0
COUNTS_PER_NOTICE = 500  # (user id, count) pairs: well under NOTIFY's 8000 bytes


class PostgresHub(LocalHub):
    def __init__(
        self,
        dsn: str,
        node: str,
        events: EventFeed,
        metrics: ServerMetrics,
        throttles: LoginThrottles,
    ) -> None:
        super().__init__(events, metrics, throttles)
        self.node = node
        self.origin = secrets.token_hex(6)  # this process, in its notices
        self.link = ClusterLink(dsn, node, self._heard, self._lost)
        self._filled: Counter[int] = Counter()  # queue places to announce, per user id
        self._emptied: Counter[int] = Counter()
        self._announce_scheduled = False
        self._outbox: list[str] = []
        self._released: list[int] = []  # claims to give up, with the next notices
        self._sender: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._reconnect = asyncio.Event()
        self._touched: dict[int, float] = {}  # user id -> when a notice last moved it
        self._stopping = False
        self._cursor = 0  # every user up to this id has been read

    async def start(self) -> None:
        self._cursor = max(self.directory.by_id, default=0)  # the server loaded them all
        await self.link.open()
        await self._resync()
        self._watcher = asyncio.create_task(self._watch(), name="mailslot-cluster")

    async def stop(self) -> None:
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
        pending = [*self._tasks, *([self._sender] if self._sender else [])]
        if pending:
            await asyncio.wait(pending, timeout=5)
        await self.link.close()

    def trouble(self) -> str | None:
        if self.link.connected:
            return None
        return "the cluster's database connection is down (reconnecting)"

    # -- names ---------------------------------------------------------------------

    async def find(self, key: str) -> UserState | None:
        known = self.directory.by_key.get(key)
        if known is not None:  # kept up to date by "new", "pw" and "del" notices
            return known
        record = await self.link.user(key)
        return None if record is None else self._learn(record)

    async def catch_up(self) -> bool:
        # Users commit in id order (PostgresStore.create_user), so everything up to the
        # last id this read has seen is known; a user learned otherwise (find, a notice,
        # created here) must not move the cursor past one not read yet.
        records = await self.link.users_after(self._cursor)
        for record in records:
            self._learn(record)
        if records:
            self._cursor = max(self._cursor, records[-1].id)
        return bool(records)

    def _learn(self, record: UserRecord) -> UserState:
        known = self.directory.by_key.get(record.key)
        return known if known is not None else self.directory.add(record)

    def user_created(self, state: UserState, source: str) -> None:
        super().user_created(state, source)
        self._tell({"k": "new", "u": state.record.id, "s": source})

    def user_deleted(self, state: UserState) -> None:
        super().user_deleted(state)
        self._tell({"k": "del", "u": state.record.id})

    def password_set(self, state: UserState, password_hash: str) -> None:
        super().password_set(state, password_hash)
        self._tell({"k": "pw", "u": state.record.id})

    # -- claims and presence ------------------------------------------------------------

    async def claim(self, state: UserState, listener: Listener) -> bool:
        waiting = await self.link.claim(state.record.id)
        if waiting is None:
            return False
        state.waiting = waiting
        return True

    def logged_in(self, state: UserState, listener: Listener, created: bool) -> None:
        state.node = None  # here now, whatever a notice said before
        super().logged_in(state, listener, created)
        self._tell({"k": "on", "u": state.record.id, "n": self.node, "t": now_micros()})

    def logged_out(self, state: UserState, listener: Listener) -> None:
        claimed = state.session is listener
        super().logged_out(state, listener)
        if claimed:
            self._released.append(state.record.id)
            self._tell({"k": "off", "u": state.record.id, "n": self.node})

    # -- mail ------------------------------------------------------------------------------

    def delivered(self, recipients: Sequence[UserState]) -> None:
        super().delivered(recipients)
        for state in recipients:
            self._filled[state.record.id] += 1
        self._announce_soon()

    def acknowledged(self, state: UserState, count: int) -> None:
        super().acknowledged(state, count)
        if count:
            self._emptied[state.record.id] += count
            self._announce_soon()

    def login_failed(self, source: str, key: str) -> None:
        super().login_failed(source, key)
        self._tell({"k": "fail", "s": source, "key": key})

    # -- notices out -------------------------------------------------------------------------

    def _announce_soon(self) -> None:
        # Every commit resolved in this turn of the loop goes out in one statement.
        if not self._announce_scheduled:
            self._announce_scheduled = True
            asyncio.get_running_loop().call_soon(self._announce)

    def _announce(self) -> None:
        self._announce_scheduled = False
        for kind, counts in (("mail", self._filled), ("ack", self._emptied)):
            pairs = [n for item in counts.items() for n in item]
            counts.clear()
            step = 2 * COUNTS_PER_NOTICE
            for start in range(0, len(pairs), step):
                self._tell({"k": kind, "c": pairs[start : start + step]})

    def _tell(self, notice: dict[str, Any]) -> None:
        notice["o"] = self.origin
        self._outbox.append(json.dumps(notice, separators=(",", ":")))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())

    async def _send(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            released, self._released = self._released, []
            try:
                await self.link.notify(batch, released)
            except StoreError:
                # The claims went with the connection; the other nodes read the whole
                # picture again when they notice.
                self._outbox.clear()
                self._released.clear()
                return

    # -- notices in ----------------------------------------------------------------------------

    def _heard(self, payload: str) -> None:
        try:
            notice = json.loads(payload)
            if notice.get("o") == self.origin:
                return
            handler = _HANDLERS.get(notice.get("k"))
            if handler is not None:
                handler(self, notice)
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("ignored a malformed cluster notice: %.80r", payload)

    def _heard_on(self, notice: dict[str, Any]) -> None:
        user_id, node = int(notice["u"]), str(notice["n"])
        since = datetime.fromtimestamp(int(notice["t"]) / 1e6, UTC)
        self._touched[user_id] = time.monotonic()
        state = self.directory.by_id.get(user_id)
        if state is None:
            self._spawn(self._learn_then(lambda: self._went_online(user_id, node, since)))
        else:
            self._went_online(user_id, node, since)

    def _heard_off(self, notice: dict[str, Any]) -> None:
        user_id = int(notice["u"])
        self._touched[user_id] = time.monotonic()
        state = self.directory.by_id.get(user_id)
        # Notices from two nodes may cross: a user who left one node and is already on
        # another stays online.
        if state is not None and state.node == notice["n"]:
            self._went_offline(user_id)

    def _heard_new(self, notice: dict[str, Any]) -> None:
        user_id, source = int(notice["u"]), str(notice["s"])
        self.throttles.new_users.take(source)
        self._spawn(self._learn_then(lambda: self._announce_new_user(user_id)))

    def _heard_del(self, notice: dict[str, Any]) -> None:
        state = self.directory.by_id.get(int(notice["u"]))
        if state is not None:
            self._forget(state)

    def _forget(self, state: UserState) -> None:
        """A user deleted on another node: gone here too."""
        self.directory.remove(state)
        if state.session is not None:
            state.session.close(CloseReason.ACCOUNT_DELETED)

    def _heard_pw(self, notice: dict[str, Any]) -> None:
        state = self.directory.by_id.get(int(notice["u"]))
        if state is not None:
            self._spawn(self._reread(state))

    async def _reread(self, state: UserState) -> None:
        """The user's record again, with the password hash another node just set."""
        with contextlib.suppress(StoreError):  # read again on reconnect (_resync)
            record = await self.link.user(state.record.key)
            if record is not None:
                state.record = record

    def _heard_mail(self, notice: dict[str, Any]) -> None:
        for user_id, count in _pairs(notice["c"]):
            state = self.directory.by_id.get(user_id)
            if state is not None:
                self.queued(state, count)

    def _heard_ack(self, notice: dict[str, Any]) -> None:
        for user_id, count in _pairs(notice["c"]):
            state = self.directory.by_id.get(user_id)
            if state is not None:
                state.waiting = max(0, state.waiting - count)

    def _heard_fail(self, notice: dict[str, Any]) -> None:
        self.throttles.failed(str(notice["s"]), str(notice["key"]))

    async def _learn_then(self, then: Callable[[], None]) -> None:
        try:
            await self.catch_up()
        except StoreError:
            return
        then()

    def _announce_new_user(self, user_id: int) -> None:
        state = self.directory.by_id.get(user_id)
        if state is not None:
            self.events.publish("user_created", user=state.name)
            self.broadcast(encode(NewUserEvent(user=state.name)))

    def _went_online(self, user_id: int, node: str, since: datetime | None = None) -> None:
        """`since`: when the login was, if a notice said (pg_locks does not)."""
        state = self.directory.by_id.get(user_id)
        if state is None or state.session is not None:
            return
        if state.node == node:  # seen in pg_locks before its notice came
            state.connected_since = state.connected_since or since
            return
        was_online = state.node is not None
        state.node = node
        state.connected_since = since
        if not was_online:
            self.events.publish("login", user=state.name, peer=f"node {node}")
            self.broadcast(encode(OnlineEvent(user=state.name)))

    def _went_offline(self, user_id: int) -> None:
        state = self.directory.by_id.get(user_id)
        if state is None or state.node is None:
            return
        node, state.node = state.node, None
        state.connected_since = None
        state.last_seen = datetime.now(UTC)
        self.events.publish("disconnected", user=state.name, peer=f"node {node}")
        self.broadcast(encode(OfflineEvent(user=state.name)))

    # -- the link: watching it, losing it, getting it back ---------------------------------

    def _lost(self) -> None:
        if self._stopping:
            return
        here = [state for state in self.directory.by_key.values() if state.session is not None]
        log.error(
            "lost the cluster's database connection: closing the %d sessions logged in"
            " here (their names were held on it); reconnecting",
            len(here),
        )
        for state in here:
            assert state.session is not None
            state.session.close(CloseReason.UNAVAILABLE)
        self._reconnect.set()

    async def _watch(self) -> None:
        backoff = FIRST_BACKOFF
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reconnect.wait(), PRESENCE_PERIOD)
            self._reconnect.clear()
            try:
                if self.link.connected:
                    await self._read_presence()
                    continue
                await self.link.open()
                await self._resync(reconnected=True)
                log.warning("the cluster's database connection is back")
                backoff = FIRST_BACKOFF
            except StoreError as error:
                if self.link.connected:
                    continue
                log.error("%s; trying again in %.1f s", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF, 2 * backoff)
                self._reconnect.set()

    async def _resync(self, *, reconnected: bool = False) -> None:
        """Read the whole picture: users, queue sizes, who is online elsewhere. After a
        reconnect every user again: the notices sent meanwhile (new passwords, deleted
        users) were missed."""
        if reconnected:
            await self._reread_users()
        else:
            await self.catch_up()
        counts = await self.link.waiting_counts()
        for state in self.directory.by_key.values():
            state.waiting = counts.get(state.record.id, 0)
        await self._read_presence(resync=True)

    async def _reread_users(self) -> None:
        records = await self.link.users_after(0)
        present = set()
        for record in records:
            self._learn(record).record = record
            present.add(record.id)
        if records:
            self._cursor = max(self._cursor, records[-1].id)
        for state in list(self.directory.by_key.values()):
            if state.record.id not in present:
                self._forget(state)

    async def _read_presence(self, resync: bool = False) -> None:
        started = time.monotonic()
        online = await self.link.online()
        if any(user_id not in self.directory.by_id for user_id in online):
            await self.catch_up()

        def settled(user_id: int) -> bool:  # not moved by a notice while we read
            return resync or self._touched.get(user_id, 0.0) < started

        for state in list(self.directory.by_key.values()):
            user_id = state.record.id
            if state.node is not None and user_id not in online and settled(user_id):
                self._went_offline(user_id)
        for user_id, node in online.items():
            if settled(user_id):
                self._went_online(user_id, node)
        cutoff = started - 60
        self._touched = {k: at for k, at in self._touched.items() if at > cutoff}

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _pairs(flat: Iterable[int]) -> Iterable[tuple[int, int]]:
    numbers = iter(flat)
    return ((int(a), int(b)) for a, b in zip(numbers, numbers, strict=True))


_HANDLERS = {
    "on": PostgresHub._heard_on,
    "off": PostgresHub._heard_off,
    "new": PostgresHub._heard_new,
    "del": PostgresHub._heard_del,
    "pw": PostgresHub._heard_pw,
    "mail": PostgresHub._heard_mail,
    "ack": PostgresHub._heard_ack,
    "fail": PostgresHub._heard_fail,
}
