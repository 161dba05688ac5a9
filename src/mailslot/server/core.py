"""The server: listener, presence, routing of pushes, idle sweep and clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime

from mailslot import __version__
from mailslot.protocol import CloseReason
from mailslot.server.accounts import Accounts
from mailslot.server.config import ServerConfig, StartupError, listen_failure
from mailslot.server.connections import Connections
from mailslot.server.context import SessionContext
from mailslot.server.datadir import DataDir
from mailslot.server.directory import Directory
from mailslot.server.events import EventFeed
from mailslot.server.hub.base import Hub
from mailslot.server.hub.local import LocalHub
from mailslot.server.metrics import ServerMetrics
from mailslot.server.operations import Operations
from mailslot.server.throttle import LoginThrottles, RepeatLog
from mailslot.server.transport import tcp
from mailslot.store import SQLiteStore, Store, StoreError, is_postgres_url, redact

# Each request allocates a few short-lived containers; with the default first
# threshold (700) the collector ran every few dozen requests and cost several per cent
# of the server's CPU (perf, bench W6). Young objects are still collected.
GC_THRESHOLDS = (50_000, 20, 20)

log = logging.getLogger("mailslot.server")


@dataclass(frozen=True, slots=True)
class UserRow:
    name: str
    online: bool
    node: str | None  # the node it is logged in on (cluster mode), or None
    connected_since: datetime | None
    last_seen: datetime | None
    waiting: int


@dataclass(frozen=True, slots=True)
class ServerSnapshot:
    address: str
    node: str | None  # this node's name in cluster mode
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
        self.events = EventFeed()
        self.metrics = ServerMetrics()
        limits = config.limits
        throttles = LoginThrottles(
            limits.login_failures, limits.login_failures_per_source, limits.new_users_per_source
        )
        self.hub: Hub = open_hub(config, self.node_name, self.events, self.metrics, throttles)
        self.refusal_log = RepeatLog(log, "refused logins")
        self.connection_log = RepeatLog(log, "refused connections")
        self.handshake_log = RepeatLog(log, "failed TLS handshakes")
        self.slow_consumer_log = RepeatLog(log, "slow consumers dropped")
        self.throttles = throttles
        self.sessions = Connections(limits, self.metrics, self.events, self.connection_log)
        self.context = SessionContext(
            software=self.software,
            auth=config.auth,
            limits=limits,
            store=self.store,
            hub=self.hub,
            accounts=Accounts(config.auth, self.store, self.hub, throttles),
            connections=self.sessions,
            metrics=self.metrics,
            events=self.events,
            refusal_log=self.refusal_log,
            slow_consumer_log=self.slow_consumer_log,
        )
        self.operations = Operations(self)  # admin socket, HTTP side port
        self.started_at = datetime.now(UTC)
        self.port = config.port
        self._listener: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._tls: ssl.SSLContext | None = None
        self._data_dir = DataDir(config.data_dir, config.database_file)

    @property
    def directory(self) -> Directory:
        return self.hub.directory

    @property
    def node_name(self) -> str:
        return node_name(self.config)

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
            await self.hub.stop()
            await self.store.close()
            self._data_dir.close()
            raise
        self.port = self._listener.sockets[0].getsockname()[1]
        self.started_at = datetime.now(UTC)
        self._sweeper = asyncio.create_task(self._sweep_idle())
        # What start-up loaded lives as long as the server: keep the cyclic garbage
        # collector from scanning it again and again (pauses show up as latency).
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
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
            await self.hub.start()
        except StoreError as error:
            raise StartupError(str(error)) from None

    async def _listen(self) -> asyncio.Server:
        try:
            return await tcp.listen(
                self.context, self.config.host, self.config.port, self._tls, self.handshake_log
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
        await self.sessions.close_all(CloseReason.SHUTDOWN, grace=5.0)
        # After the sessions: the HTTP side waits for its WebSocket handlers to end.
        await self.operations.stop()
        await self.hub.stop()
        await self.store.close()
        self._data_dir.close()
        log.info("stopped; %d users known", len(self.directory))
        self.events.publish("stopped")
        self._stopped.set()

    # -- connections ---------------------------------------------------------------

    def admit(self, peer: str, source: str) -> bytes | None:
        """None if a new connection may go on, or the error frame that refuses it."""
        return self.sessions.admit(peer, source)

    @property
    def delivered(self) -> int:
        return self.hub.delivered_total

    # -- for the dashboard ---------------------------------------------------------

    def snapshot(self) -> ServerSnapshot:
        here = self.node_name if self.config.database is not None else None  # cluster mode
        rows = [
            UserRow(
                s.name,
                s.online,
                here if s.session is not None else s.node,
                s.connected_since,
                s.last_seen,
                s.waiting,
            )
            for s in self.directory.sorted()
        ]
        return ServerSnapshot(
            address=self.address,
            node=here,
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
            self.sessions.sweep()
            for repeats in (
                self.refusal_log,
                self.connection_log,
                self.handshake_log,
                self.slow_consumer_log,
            ):
                repeats.flush()
            self.throttles.prune()


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
        from mailslot.store.cluster import application_name
        from mailslot.store.postgres import PostgresStore
    except ImportError:
        raise StartupError(
            "PostgreSQL needs the asyncpg package: pip install 'mailslot[postgres]'"
        ) from None
    return PostgresStore(
        config.database,
        server_settings={"application_name": application_name(node_name(config))},
    )


def node_name(config: ServerConfig) -> str:
    return config.node_name or socket.gethostname()


def open_hub(
    config: ServerConfig,
    node: str,
    events: EventFeed,
    metrics: ServerMetrics,
    throttles: LoginThrottles,
) -> Hub:
    """In-process for one node on SQLite; on PostgreSQL, every node of the cluster."""
    if config.database is None:
        return LocalHub(events, metrics, throttles)
    from mailslot.server.hub.postgres import PostgresHub

    return PostgresHub(config.database, node, events, metrics, throttles)
