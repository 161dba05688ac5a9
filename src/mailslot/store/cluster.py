"""A node's own PostgreSQL connection for cluster mode, and all the SQL the hub needs.

Name claims are session-level advisory locks held on this connection: one key per user
id, in a lock class of its own per schema. PostgreSQL releases them when the connection
ends, so the names of a node that dies are free again as soon as its database server
notices: at once on one host (the kernel closes the socket), within the TCP keepalive
bound across a network (KEEPALIVE below: about 25 s).

The same connection LISTENs on the cluster's channel: notices between nodes (presence,
new users, new mail, failed logins) travel as NOTIFY payloads, sent on their own, never
inside the transaction that writes messages (PostgreSQL takes a database-wide lock to
commit a transaction that notified).

The link runs one command at a time (a connection cannot do more); callers queue.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import asyncpg

from mailslot.store import redact
from mailslot.store.base import StoreUnavailable, UserRecord
from mailslot.store.postgres import CONNECTION_FAILURES, close_connection

log = logging.getLogger("mailslot.store")

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

COMMAND_TIMEOUT = 5.0
# Seconds idle before the first probe, between probes, probes lost: a database server
# that loses a node's machine frees its names within about 10 + 5 * 3 s.
KEEPALIVE = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}
PAYLOAD_BYTES = 7900  # NOTIFY payloads are at most 8000 bytes
APPLICATION_PREFIX = "mailslot "
MAX_CLAIMABLE_ID = 2**31 - 1  # advisory lock keys are two int4s

_ONLINE = """
SELECT l.objid::bigint, a.application_name
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
  AND l.classid = $1::bigint::oid AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


class ClusterLink:
    def __init__(
        self,
        dsn: str,
        node: str,
        on_notice: Callable[[str], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.dsn = dsn
        self.node = node
        self._on_notice = on_notice
        self._on_lost = on_lost
        self._db: Connection | None = None
        self._turn = asyncio.Lock()
        self.channel = ""
        self._claim_class = 0

    @property
    def connected(self) -> bool:
        return self._db is not None and not self._db.is_closed()

    async def open(self) -> None:
        """Connect and listen; StoreUnavailable with a sentence when it cannot."""
        try:
            db: Connection = await asyncpg.connect(
                self.dsn,
                timeout=COMMAND_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
                server_settings={"application_name": application_name(self.node), **KEEPALIVE},
            )
        except CONNECTION_FAILURES as error:
            raise StoreUnavailable(
                f"cannot reach the database {redact(self.dsn)} for the cluster: {error}"
            ) from None
        try:
            schema = await db.fetchval("SELECT coalesce(current_schema(), '')")
            tag = zlib.crc32(f"mailslot {schema}".encode())
            self._claim_class = tag & 0x7FFFFFFF
            self.channel = f"mailslot_{tag:08x}"
            await db.add_listener(self.channel, self._heard)
        except CONNECTION_FAILURES as error:
            db.terminate()
            raise StoreUnavailable(f"cannot listen for the cluster's notices: {error}") from None
        db.add_termination_listener(self._terminated)
        self._db = db

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is None:
            return
        db.remove_termination_listener(self._terminated)
        await close_connection(db, COMMAND_TIMEOUT)

    def _heard(self, db: object, pid: int, channel: str, payload: object) -> None:
        self._on_notice(str(payload))

    def _terminated(self, db: Any) -> None:
        if self._db is db:
            self._db = None
            self._on_lost()

    async def _run(self, method: str, query: str, *args: object) -> Any:
        async with self._turn:
            db = self._db
            if db is None or db.is_closed():
                raise StoreUnavailable("the cluster's database connection is down")
            try:
                return await getattr(db, method)(query, *args)
            except (
                OSError,
                TimeoutError,
                asyncpg.InterfaceError,
                asyncpg.PostgresConnectionError,
                asyncpg.AdminShutdownError,
            ) as error:
                log.error("the cluster's database connection failed: %s", error)
                if self._db is db:
                    self._db = None
                    db.terminate()
                    self._on_lost()
                raise StoreUnavailable("the cluster's database connection is down") from None
            except asyncpg.PostgresError as error:
                raise StoreUnavailable(f"the cluster's database refused: {error}") from None

    # -- claims ------------------------------------------------------------------------

    async def claim(self, user_id: int) -> int | None:
        """Hold the user's name for this node and count its queue, in one round trip;
        None when another node holds the name."""
        if user_id > MAX_CLAIMABLE_ID:
            raise StoreUnavailable("user ids this large cannot be claimed in cluster mode")
        waiting: int | None = await self._run(
            "fetchval",
            "SELECT CASE WHEN pg_try_advisory_lock($1::int, $2::int)"
            " THEN (SELECT count(*) FROM queue WHERE user_id = $2) END",
            self._claim_class,
            user_id,
        )
        return waiting


    async def online(self) -> dict[int, str]:
        """The users other nodes have claimed: user id -> node name."""
        rows = await self._run("fetch", _ONLINE, self._claim_class)
        return {user_id: node_of(app) for user_id, app in rows}

    # -- notices -----------------------------------------------------------------------

    async def notify(self, payloads: Sequence[str], released: Sequence[int] = ()) -> None:
        """Release these users' names, then send notices to every node (this one hears
        them too): one statement, one round trip. The names are free at once; the
        notices are delivered when the statement commits, after that."""
        await self._run(
            "execute",
            "SELECT (SELECT count(pg_advisory_unlock($1::int, u)) FROM unnest($2::int[]) u),"
            " (SELECT count(*) FROM unnest($4::text[]) p WHERE pg_notify($3, p) IS NULL)",
            self._claim_class,
            list(released),
            self.channel,
            list(payloads),
        )

    # -- reads of the shared user log and queues ---------------------------------------

    async def user(self, key: str) -> UserRecord | None:
        row = await self._run(
            "fetchrow",
            "SELECT id, key, name, password_hash, created_at FROM users WHERE key = $1",
            key,
        )
        return None if row is None else UserRecord(*row)

    async def users_after(self, user_id: int) -> list[UserRecord]:
        rows = await self._run(
            "fetch",
            "SELECT id, key, name, password_hash, created_at FROM users WHERE id > $1 ORDER BY id",
            user_id,
        )
        return [UserRecord(*row) for row in rows]

    async def waiting_counts(self) -> dict[int, int]:
        rows = await self._run("fetch", "SELECT user_id, count(*) FROM queue GROUP BY user_id")
        return {user_id: count for user_id, count in rows}


def application_name(node: str) -> str:
    """How a node's connections show in pg_stat_activity (and pg_terminate_backend)."""
    return (APPLICATION_PREFIX + node)[:63]


def node_of(application: str) -> str:
    return application.removeprefix(APPLICATION_PREFIX)
