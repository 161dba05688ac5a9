"""The server: listener, presence, routing of pushes, idle sweep and clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import ssl
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from mailslot import __version__
from mailslot.protocol import CloseReason, ErrorCode, encode
from mailslot.server.config import ServerConfig
from mailslot.server.directory import Directory, UserState
from mailslot.server.events import EventFeed
from mailslot.server.metrics import ServerMetrics
from mailslot.server.operations import Operations
from mailslot.server.refusal import error_frame
from mailslot.server.session import Session
from mailslot.server.throttle import LoginThrottle
from mailslot.store import SQLiteStore, Store, UserRecord

log = logging.getLogger("mailslot.server")


@dataclass(frozen=True, slots=True)
class UserRow:
    name: str
    online: bool
    connected_since: datetime | None
    last_seen: datetime | None
    waiting: int


@dataclass(frozen=True, slots=True)
class ServerSnapshot:
    address: str
    tls: bool
    auth: str
    started_at: datetime
    users: list[UserRow]
    online: int
    known: int
    waiting: int
    delivered: int


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class MailslotServer:
    software = f"mailslot/{__version__}"

    def __init__(self, config: ServerConfig, store: Store | None = None) -> None:
        self.config = config
        self.store: Store = store if store is not None else SQLiteStore(config.database)
        self.directory = Directory()
        self.events = EventFeed()
        self.login_throttle = LoginThrottle(config.limits.login_failures)
        self.claims: dict[str, Session] = {}  # names logged in, or logging in, right now
        self.sessions: set[Session] = set()
        self.presence_watchers: set[Session] = set()  # logged in and asking for presence events
        self.delivered = 0
        self.metrics = ServerMetrics()
        self.operations = Operations(self)  # admin socket, HTTP side port
        self.tls_context: ssl.SSLContext | None = None
        self.started_at = datetime.now(UTC)
        self.port = config.port
        self._listener: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._listener is not None and self._listener.is_serving()

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        _raise_open_file_limit()
        await self.store.open()
        waiting = await self.store.waiting_counts()
        for record in await self.store.load_users():
            self.directory.add(record, waiting.get(record.id, 0))
        await self.operations.start()
        context = None
        if self.config.tls_cert and self.config.tls_key:
            context = tls_context(str(self.config.tls_cert), str(self.config.tls_key))
        self.tls_context = context  # SIGHUP loads a renewed certificate into it
        self._listener = await asyncio.start_server(
            self._accept,
            self.config.host,
            self.config.port,
            ssl=context,
            limit=self.config.limits.max_frame,
            backlog=1024,
            ssl_handshake_timeout=10 if context else None,
        )
        self.port = self._listener.sockets[0].getsockname()[1]
        self.started_at = datetime.now(UTC)
        self._sweeper = asyncio.create_task(self._sweep_idle())
        # What start-up loaded lives as long as the server: keep the cyclic garbage
        # collector from scanning it again and again (pauses show up as latency).
        gc.freeze()
        log.info(
            "listening on %s (tls %s, auth %s, data %s, %d users known)",
            self.address,
            "on" if context else "off",
            self.config.auth,
            self.config.data_dir,
            len(self.directory),
        )
        self.events.publish("listening", detail=self.address)

    async def serve_forever(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        if self._stopped.is_set():
            return
        if self._listener is not None:
            self._listener.close()
        await self.operations.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for session in list(self.sessions):
            session.close(CloseReason.SHUTDOWN)
        if self._tasks:
            _, unfinished = await asyncio.wait(self._tasks, timeout=5)
            for task in unfinished:
                task.cancel()
        await self.store.close()
        log.info("stopped; %d users known", len(self.directory))
        self.events.publish("stopped")
        self._stopped.set()

    # -- connections ---------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, reader, writer)
        if len(self.sessions) >= self.config.limits.max_connections:
            log.info("rejected %s: server busy", session.peer)
            self.metrics.connections_refused[ErrorCode.SERVER_BUSY] += 1
            self.events.publish("rejected", peer=session.peer, detail=ErrorCode.SERVER_BUSY)
            writer.write(
                error_frame(None, ErrorCode.SERVER_BUSY, "the server is full; try again later")
            )
            writer.close()
            return
        self.sessions.add(session)
        self.metrics.connections_accepted += 1
        log.info("connection from %s", session.peer)
        self.events.publish("connected", peer=session.peer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await session.run()
        finally:
            self._tasks.discard(task)

    def logged_in(self, session: Session, created: bool) -> None:
        state = session.user
        assert state is not None
        self.directory.went_online(state, session, datetime.now(UTC))
        self.metrics.logins_ok += 1
        if session.presence:
            self.presence_watchers.add(session)
        log.info("login %r from %s%s", state.name, session.peer, " (new user)" if created else "")
        self.events.publish("login", user=state.name, peer=session.peer)
        if created:
            self._broadcast({"event": "new_user", "user": state.name}, session)
        self._broadcast({"event": "online", "user": state.name}, session)

    def disconnected(self, session: Session) -> None:
        self.sessions.discard(session)
        self.presence_watchers.discard(session)
        state = session.user
        reason = session.close_reason or "closed"
        if state is None:
            log.info("disconnect %s (%s)", session.peer, reason)
            self.events.publish("disconnected", peer=session.peer, detail=reason)
            return
        if self.claims.get(state.record.key) is session:
            del self.claims[state.record.key]
        self.directory.went_offline(state, datetime.now(UTC))
        log.info("disconnect %r %s (%s)", state.name, session.peer, reason)
        self.events.publish("disconnected", user=state.name, peer=session.peer, detail=reason)
        self._broadcast({"event": "offline", "user": state.name}, session)

    def _broadcast(self, event: dict[str, str], origin: Session) -> None:
        frame = encode(event)
        for session in self.presence_watchers:
            if session is not origin:
                session.push(frame)

    # -- routing ---------------------------------------------------------------------

    def user_created(self, record: UserRecord) -> UserState:
        state = self.directory.add(record)  # logged with the login it belongs to
        self.events.publish("user_created", user=record.name)
        return state

    def password_set(self, state: UserState, password_hash: str) -> None:
        state.record = replace(state.record, password_hash=password_hash)
        log.info("password set for %r", state.name)

    def delivered_to_queues(self, sender: UserState, recipients: list[UserState]) -> None:
        self.metrics.enqueued += len(recipients)
        for state in recipients:
            state.waiting += 1
            if state.session is not None:
                state.session.push(encode({"event": "mail", "waiting": state.waiting}))
        if self.events.watched:
            self.events.publish("enqueued", user=sender.name, count=len(recipients))

    def acknowledged(self, state: UserState, count: int) -> None:
        if not count:
            return
        state.waiting = max(0, state.waiting - count)
        self.metrics.acked += count
        self.delivered += count
        self.events.publish("delivered", user=state.name, count=count)

    # -- for the dashboard ---------------------------------------------------------

    def snapshot(self) -> ServerSnapshot:
        rows = [
            UserRow(s.name, s.online, s.connected_since, s.last_seen, s.waiting)
            for s in self.directory.sorted()
        ]
        return ServerSnapshot(
            address=self.address,
            tls=bool(self.config.tls_cert),
            auth=self.config.auth,
            started_at=self.started_at,
            users=rows,
            online=sum(1 for row in rows if row.online),
            known=len(rows),
            waiting=sum(row.waiting for row in rows),
            delivered=self.delivered,
        )

    async def _sweep_idle(self) -> None:
        timeout = self.config.limits.idle_timeout
        while True:
            await asyncio.sleep(max(0.2, min(timeout / 4, 30.0)))
            deadline = time.monotonic() - timeout
            for session in list(self.sessions):
                if session.last_activity < deadline:
                    session.close(CloseReason.IDLE)


def _raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
