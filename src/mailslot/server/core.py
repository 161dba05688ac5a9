"""The server: listener, presence, routing of pushes, idle sweep and clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import socket
import ssl
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from mailslot import __version__
from mailslot.protocol import CloseReason, ErrorCode, encode
from mailslot.server.channel import Channel, TCPChannel, peer_and_source
from mailslot.server.config import ServerConfig, StartupError, listen_failure
from mailslot.server.datadir import DataDir
from mailslot.server.directory import Directory, UserState
from mailslot.server.events import EventFeed
from mailslot.server.metrics import ServerMetrics
from mailslot.server.operations import Operations
from mailslot.server.refusal import error_frame
from mailslot.server.session import Session
from mailslot.server.throttle import FailureWindow, RepeatLog, SourceBuckets
from mailslot.store import (
    SQLiteStore,
    Store,
    StoreError,
    UserRecord,
    is_postgres_url,
    redact,
)

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
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            raise StartupError(f"the TLS key {key} does not match the certificate {cert}") from None
        raise StartupError(
            f"cannot load the TLS certificate {cert} and key {key}: they must be PEM files"
            f" ({error.reason or error})"
        ) from None
    except OSError as error:
        raise StartupError(
            f"cannot read the TLS certificate {cert} or key {key}: {error.strerror}"
        ) from None
    return context


class MailslotServer:
    software = f"mailslot/{__version__}"

    def __init__(self, config: ServerConfig, store: Store | None = None) -> None:
        self.config = config
        self.store: Store = store if store is not None else open_store(config)
        self.directory = Directory()
        self.events = EventFeed()
        limits = config.limits
        self.login_failures = FailureWindow(limits.login_failures)  # by (source, name key)
        self.source_failures = FailureWindow(limits.login_failures_per_source)  # by source
        self.new_user_buckets = SourceBuckets(limits.new_users_per_source)
        self.refusal_log = RepeatLog(log, "refused logins")
        self.connection_log = RepeatLog(log, "refused connections")
        self.handshake_log = RepeatLog(log, "failed TLS handshakes")
        self.slow_consumer_log = RepeatLog(log, "slow consumers dropped")
        self.claims: dict[str, Session] = {}  # names logged in, or logging in, right now
        self.sessions: set[Session] = set()
        self.anonymous: dict[str, int] = {}  # connections not logged in, per source
        self.presence_watchers: set[Session] = set()  # logged in and asking for presence events
        self.delivered = 0
        self.metrics = ServerMetrics()
        self.operations = Operations(self)  # admin socket, HTTP side port
        self.started_at = datetime.now(UTC)
        self.port = config.port
        self._listener: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._tls: ssl.SSLContext | None = None
        self._data_dir = DataDir(config.data_dir, config.database_file)

    @property
    def node_name(self) -> str:
        return self.config.node_name or socket.gethostname()

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._listener is not None and self._listener.is_serving()

    @property
    def tls_context(self) -> ssl.SSLContext | None:
        """The live TLS context; SIGHUP loads a renewed certificate into it."""
        return self._tls

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Raises StartupError, with one sentence for the operator, if it cannot serve."""
        _raise_open_file_limit()
        if self.config.tls_cert and self.config.tls_key:
            self._tls = tls_context(str(self.config.tls_cert), str(self.config.tls_key))
        self._data_dir.open()
        try:
            await self._load()
            await self.operations.start()
            self._listener = await self._listen()
        except BaseException:
            await self.operations.stop()
            await self.store.close()
            self._data_dir.close()
            raise
        self.port = self._listener.sockets[0].getsockname()[1]
        self.started_at = datetime.now(UTC)
        self._sweeper = asyncio.create_task(self._sweep_idle())
        # What start-up loaded lives as long as the server: keep the cyclic garbage
        # collector from scanning it again and again (pauses show up as latency).
        gc.freeze()
        protected = sum(1 for s in self.directory.by_key.values() if s.record.password_hash)
        log.info(
            "%s listening on %s (tls %s, auth %s, data %s, %d users known, %d with a password)",
            self.node_name,
            self.address,
            "on" if self._tls else "off",
            self.config.auth,
            redact(self.config.database) if self.config.database else self.config.data_dir,
            len(self.directory),
            protected,
        )
        if self.config.auth == "none" and protected:
            log.info(
                "open mode: the %d names with a password still need it; the others need none",
                protected,
            )
        self.events.publish("listening", detail=self.address)

    async def _load(self) -> None:
        try:
            await self.store.open()
            if isinstance(self.store, SQLiteStore):  # the data dir holds the database
                self._data_dir.mark_initialised(self.store.database_id)
            waiting = await self.store.waiting_counts()
            for record in await self.store.load_users():
                self.directory.add(record, waiting.get(record.id, 0))
        except StoreError as error:
            raise StartupError(str(error)) from None

    async def _listen(self) -> asyncio.Server:
        # TLS is started per connection rather than by the listener, so that a failed
        # handshake is seen (and logged) instead of vanishing inside asyncio.
        try:
            return await asyncio.start_server(
                self._accept,
                self.config.host,
                self.config.port,
                limit=self.config.limits.max_frame,
                backlog=1024,
            )
        except OSError as error:
            why = listen_failure(error)
            raise StartupError(f"cannot listen on {self.address}: {why}") from None

    async def serve_forever(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        if self._stopped.is_set():
            return
        if self._listener is not None:
            self._listener.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for session in list(self.sessions):
            session.close(CloseReason.SHUTDOWN)
        if self._tasks:
            _, unfinished = await asyncio.wait(self._tasks, timeout=5)
            for task in unfinished:
                task.cancel()
        # After the sessions: the HTTP side waits for its WebSocket handlers to end.
        await self.operations.stop()
        await self.store.close()
        self._data_dir.close()
        log.info("stopped; %d users known", len(self.directory))
        self.events.publish("stopped")
        self._stopped.set()

    # -- connections ---------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer, source = peer_and_source(writer.get_extra_info("peername"))
        refusal = self.admit(peer, source)
        if refusal is not None:
            if self._tls is None:  # a TLS client could not read a plain-text error
                writer.write(refusal)
            writer.close()
            return
        if self._tls is not None and not await self._handshake(writer, peer, source):
            self._left_anonymous(source)
            return
        await self.serve(TCPChannel(reader, writer, self.config.limits.max_frame), peer, source)

    def admit(self, peer: str, source: str) -> bytes | None:
        """Count a new connection as one that has not logged in yet; or, if it is refused,
        the error frame that says why (logged once per source per interval)."""
        refusal = self._refuse_connection(source)
        if refusal is None:
            self.anonymous[source] = self.anonymous.get(source, 0) + 1
            return None
        self.metrics.connections_refused[ErrorCode.SERVER_BUSY] += 1
        self.connection_log.refused(source, "server_busy", f"rejected {peer}: {refusal}")
        self.events.publish("rejected", peer=peer, detail=ErrorCode.SERVER_BUSY)
        return error_frame(None, ErrorCode.SERVER_BUSY, refusal)

    async def serve(self, channel: Channel, peer: str, source: str) -> None:
        """Run a session on an admitted connection until it ends, whatever its transport."""
        session = Session(self, channel, peer, source)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.sessions.add(session)
        self.metrics.connections_accepted += 1
        log.info("connection from %s", peer)
        self.events.publish("connected", peer=peer)
        try:
            await session.run()
        finally:
            self._tasks.discard(task)
            if session.user is None:
                self._left_anonymous(source)

    def _refuse_connection(self, source: str) -> str | None:
        """Why a new connection from `source` is refused, or None."""
        limits = self.config.limits
        if len(self.sessions) >= limits.max_connections:
            return "the server is full; try again later"
        per_source = limits.max_anonymous_per_source
        if per_source and self.anonymous.get(source, 0) >= per_source:
            return (
                f"{per_source} connections from your address have not logged in yet; "
                "log in on those or close them first"
            )
        return None

    async def _handshake(self, writer: asyncio.StreamWriter, peer: str, source: str) -> bool:
        assert self._tls is not None
        try:
            await writer.start_tls(
                self._tls, ssl_handshake_timeout=self.config.limits.login_timeout
            )
        except (ssl.SSLError, OSError, TimeoutError) as error:
            reason = getattr(error, "reason", None) or error.__class__.__name__
            self.handshake_log.refused(
                source, str(reason), f"TLS handshake with {peer} failed: {reason}"
            )
            writer.transport.abort()
            return False
        return True

    def _left_anonymous(self, source: str) -> None:
        left = self.anonymous.get(source, 0) - 1
        if left > 0:
            self.anonymous[source] = left
        else:
            self.anonymous.pop(source, None)

    def logged_in(self, session: Session, created: bool) -> None:
        state = session.user
        assert state is not None
        self._left_anonymous(session.source)
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
        """Close connections idle too long or not logged in in time; summarise refusals."""
        limits = self.config.limits
        period = max(0.2, min(limits.idle_timeout / 4, limits.login_timeout / 4, 30.0))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            idle_since = now - limits.idle_timeout
            login_since = now - limits.login_timeout
            for session in list(self.sessions):
                if session.user is None and session.connected_at < login_since:
                    session.close(CloseReason.LOGIN_TIMEOUT)
                elif session.last_activity < idle_since:
                    session.close(CloseReason.IDLE)
            for repeats in (
                self.refusal_log,
                self.connection_log,
                self.handshake_log,
                self.slow_consumer_log,
            ):
                repeats.flush()
            self.login_failures.prune()
            self.source_failures.prune()
            self.new_user_buckets.prune()


def _raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def open_store(config: ServerConfig) -> Store:
    """The SQLite file in the data dir, or PostgreSQL when `database` names it."""
    if config.database is None:
        return SQLiteStore(config.database_file)
    if not is_postgres_url(config.database):
        raise StartupError(
            f"--database takes a PostgreSQL URL (postgresql://USER@HOST/DB), not"
            f" {config.database!r}; leave it out to keep the data in --data-dir"
        )
    try:
        from mailslot.store.postgres import PostgresStore
    except ImportError:
        raise StartupError(
            "PostgreSQL needs the asyncpg package: pip install 'mailslot[postgres]'"
        ) from None
    return PostgresStore(config.database, sole_user=True)
