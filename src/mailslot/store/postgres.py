"""The PostgreSQL store: the same contract as the SQLite store, on a database server.

Every operation becomes a job for one writer task, which owns one connection. It
takes the jobs waiting at that moment (fair batches, store/batching.py), runs them in
one transaction and resolves the callers' futures only after COMMIT returned, with
synchronous_commit on: nothing is acknowledged before PostgreSQL has it on disk, and
concurrent senders share commits. Consecutive sends in a batch are written with one
INSERT over arrays.

Failing alone: a batch first runs optimistically, all jobs in one transaction. If a
job fails, the transaction is rolled back and run again with each job in its own
savepoint, so only the jobs that fail get an error.

Errors by kind: PostgreSQL out of disk space is StorageFull (sends and new users are
refused, acks go on); a lost connection, an administrator's shutdown, a server that is
starting or read-only (a standby) is StoreUnavailable, and so is a statement that
takes longer than 5 s (60 s for those that scan a table), so that a hung server is not
waited for. A connection lost before COMMIT was sent is replaced at once and the batch
run again; one lost while committing leaves its jobs' outcome unknown, and they fail
(unacknowledged, so a client sends again; a message may then arrive twice, under two
ids). While PostgreSQL cannot be reached, jobs fail at once and the store tries again
after a back-off (0.1 s, doubling to 5 s).

Ids: from sequences, so unique across every store on the database and never reused.
They increase in the order one store hands its batches to PostgreSQL; with several
stores (nodes) on one database, a batch from one node may commit after a batch with
higher ids from another.

Schema: numbered migrations in store/migrations/postgres/, applied at open under an
advisory lock (several nodes may start at once); a database whose schema is newer
than this code is refused.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import asyncpg

from mailslot.store import redact
from mailslot.store.base import (
    Batch,
    CommitStats,
    NameTaken,
    NewMessage,
    StorageFull,
    StoredMessage,
    StoreError,
    StoreUnavailable,
    UserRecord,
)
from mailslot.store.batching import Call, Enqueue, FairBatches, Outcome, resolve, send_outcomes

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 5.0  # seconds: a statement that takes longer means PostgreSQL is in trouble
SCAN_TIMEOUT = 60.0  # for the statements that read or delete a whole table or queue
CONNECT_TIMEOUT = 5.0
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 5.0
MIGRATIONS = "migrations/postgres"
# The key of the advisory lock that stores hold shared and `mailslot migrate` alone: one
# per schema, so that the tables of several Mailslots in one database are told apart.
NODES_LOCK_KEY = "hashtext('mailslot nodes ' || coalesce(current_schema(), ''))"
# Taken by each transaction that stores a new user (see create_user).
USERS_LOCK_KEY = "hashtext('mailslot users ' || coalesce(current_schema(), ''))"

# What talking to PostgreSQL can raise when it, or the way to it, fails.
CONNECTION_FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

T = TypeVar("T")
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"
_Run = Callable[[Connection], Awaitable[Any]]
_Job = Call[_Run] | Enqueue

UNREACHABLE = "the server cannot reach its database right now; try again shortly"
CONNECTION_LOST = "the server lost its connection to the database; try again shortly"
COMMIT_UNKNOWN = (
    "the server lost its connection to the database while committing; the operation"
    " may or may not have taken effect"
)
DISK_FULL = "the database server's disk is full"


class _JobFailed(Exception):
    """In an optimistic batch, a job failed: run the jobs again, each alone."""


class _ConnectionLost(Exception):
    """The connection broke, or a statement took longer than the command timeout.
    `commit_sent`: the batch's outcome is unknown; `timed_out`: do not run it again."""

    def __init__(self, commit_sent: bool, timed_out: bool = False) -> None:
        super().__init__()
        self.commit_sent = commit_sent
        self.timed_out = timed_out


class _DiskFull(Exception):
    """A batch failed for want of disk space on the database server."""


class PostgresStore:
    def __init__(
        self,
        dsn: str,
        *,
        server_settings: Mapping[str, str] | None = None,
        command_timeout: float = COMMAND_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        """`dsn`: postgresql://USER@HOST/DB (query parameters such as search_path are
        passed on as settings); `server_settings`: more settings for the session."""
        self.dsn = dsn
        self.server_settings = {
            "application_name": "mailslot",
            **(server_settings or {}),
            "synchronous_commit": "on",  # acknowledged means on the database's disk
        }
        self.command_timeout = command_timeout
        self.connect_timeout = connect_timeout
        self._waiting: FairBatches[_Run] = FairBatches()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._connection: Connection | None = None
        self._closing = False
        self._backoff = 0.0
        self._retry_at = 0.0
        self.commits = 0  # for tests and metrics: how many transactions were committed
        self.commit_stats = CommitStats()  # for metrics

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        connection = await self._connect()
        try:
            await _migrate(connection, self.dsn)
            await _settle_deleted_users(connection)
        except BaseException as error:
            connection.terminate()
            if isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
                raise _open_failure(self.dsn, error) from error
            raise
        self._connection = connection
        self._closing = False
        self._writer = asyncio.create_task(self._write_loop(), name="mailslot-postgres")

    async def close(self) -> None:
        if self._writer is None:
            return
        self._closing = True
        self._wake.set()
        await self._writer
        self._writer = None
        if self._connection is not None:
            await close_connection(self._connection, self.connect_timeout)
            self._connection = None

    # -- the interface -----------------------------------------------------

    async def load_users(self) -> list[UserRecord]:
        async def load(db: Connection) -> list[UserRecord]:
            rows = await db.fetch(
                "SELECT id, key, name, password_hash, created_at FROM users ORDER BY id",
                timeout=SCAN_TIMEOUT,
            )
            users = [UserRecord(*row) for row in rows]
            self._waiting.names.update((user.id, user.name) for user in users)
            return users

        return await self._call(load)

    async def waiting_counts(self) -> dict[int, int]:
        async def count(db: Connection) -> dict[int, int]:
            rows = await db.fetch(
                "SELECT user_id, count(*) FROM queue GROUP BY user_id", timeout=SCAN_TIMEOUT
            )
            return {user_id: waiting for user_id, waiting in rows}

        return await self._call(count)

    async def create_user(
        self, key: str, name: str, password_hash: str | None, at: int
    ) -> UserRecord:
        async def create(db: Connection) -> UserRecord | None:
            # New users are stored one at a time across all nodes, so that their ids
            # commit in increasing order and a node reading "users above the last id I
            # know" misses nobody (ClusterLink.users_after).
            await db.execute(f"SELECT pg_advisory_xact_lock({USERS_LOCK_KEY})")
            user_id = await db.fetchval(
                "INSERT INTO users (id, key, name, password_hash, created_at)"
                " VALUES (nextval('user_ids'), $1, $2, $3, $4)"
                " ON CONFLICT (key) DO NOTHING RETURNING id",
                key,
                name,
                password_hash,
                at,
            )
            if user_id is None:
                return None
            self._waiting.names[user_id] = name
            return UserRecord(user_id, key, name, password_hash, at)

        record = await self._call(create, grows=True)
        if record is None:
            raise NameTaken(f"the name {name!r} was taken a moment ago")
        return record

    async def set_password(self, user_id: int, password_hash: str) -> None:
        async def update(db: Connection) -> None:
            await db.execute(
                "UPDATE users SET password_hash = $1 WHERE id = $2", password_hash, user_id
            )

        await self._call(update, user_id)

    def enqueue(self, messages: Sequence[NewMessage]) -> asyncio.Future[list[int]]:
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._submit(Enqueue(messages, future))
        return future

    def fetch(self, user_id: int, limit: int, after: int = 0) -> asyncio.Future[Batch]:
        return self._call(_Fetch(user_id, limit, after), user_id)

    def ack(self, user_id: int, message_ids: Sequence[int]) -> asyncio.Future[int]:
        return self._call(_Ack(user_id, list(message_ids)), user_id, rows=max(1, len(message_ids)))

    # -- for `mailslot admin` and /readyz ----------------------------------------

    async def delete_user(self, user_id: int) -> int:
        """Delete a user and its queue; how many messages were waiting for it."""

        async def delete(db: Connection) -> int:
            waiting = await _purge_queue(db, user_id)
            await db.execute("DELETE FROM users WHERE id = $1", user_id)
            await db.execute(
                "INSERT INTO deleted_users VALUES ($1) ON CONFLICT DO NOTHING", user_id
            )
            return waiting

        return await self._call(delete, user_id)

    async def purge(self, user_id: int) -> int:
        """Empty a user's queue; how many messages were in it."""

        async def purge(db: Connection) -> int:
            return await _purge_queue(db, user_id)

        return await self._call(purge, user_id)

    async def check_writable(self) -> None:
        """A write that changes nothing, committed like any other (for /readyz)."""

        async def touch(db: Connection) -> None:
            await db.execute(
                "UPDATE mailslot_schema SET version = version"
                " WHERE version = (SELECT max(version) FROM mailslot_schema)"
            )

        await self._call(touch)

    async def backup(self, target: Path) -> None:
        raise StoreError(
            "a PostgreSQL database is backed up with PostgreSQL's own tools (pg_dump, or"
            " pg_basebackup for a whole cluster), not with mailslot admin backup"
        )

    # -- handing jobs to the writer ----------------------------------------------

    def _call(
        self,
        run: Callable[[Connection], Awaitable[T]],
        user_id: int | None = None,
        *,
        rows: int = 1,
        grows: bool = False,
    ) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._submit(Call(run, future, user_id, rows, grows))
        return future

    def _submit(self, job: _Job) -> None:
        if self._writer is None or self._closing:
            job.future.set_exception(StoreUnavailable("the store is closed"))
        else:
            self._waiting.add(job)
            self._wake.set()

    # -- the writer --------------------------------------------------------------

    async def _write_loop(self) -> None:
        while self._waiting or not self._closing:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._waiting.next_batch()
            try:
                outcomes = await self._run_batch(batch)
            except Exception as error:  # the writer must outlive any bad batch
                log.exception("a batch of %d jobs failed unexpectedly", len(batch))
                outcomes = [(job.future, False, StoreError(str(error))) for job in batch]
            resolve(outcomes)

    async def _run_batch(self, batch: list[_Job], *, again: bool = False) -> list[Outcome]:
        connection = await self._usable_connection()
        if connection is None:
            return [(job.future, False, StoreUnavailable(UNREACHABLE)) for job in batch]
        try:
            return await self._run_jobs(connection, batch)
        except _ConnectionLost as lost:
            self._drop_connection(connection)
            if lost.commit_sent:
                return [(job.future, False, StoreUnavailable(COMMIT_UNKNOWN)) for job in batch]
            if again or lost.timed_out:
                return [(job.future, False, StoreUnavailable(CONNECTION_LOST)) for job in batch]
            # Nothing of the batch took effect: once more, on a new connection.
            self._retry_at = 0.0
            return await self._run_batch(batch, again=True)

    async def _run_jobs(
        self, db: Connection, batch: list[_Job], *, disk_was_full: bool = False
    ) -> list[Outcome]:
        try:
            try:
                return await self._transaction(db, batch, alone=False)
            except _JobFailed:
                return await self._transaction(db, batch, alone=True)
        except _DiskFull:
            full = StorageFull(DISK_FULL)
            if disk_was_full:
                log.error("the database server's disk is full: %d operations failed", len(batch))
                return [(job.future, False, full) for job in batch]
            log.warning("the database server's disk is full: refusing new messages and users")
            outcomes = [(job.future, False, full) for job in batch if job.grows]
            rest = [job for job in batch if not job.grows]
            return outcomes + (await self._run_jobs(db, rest, disk_was_full=True) if rest else [])

    async def _transaction(self, db: Connection, batch: list[_Job], alone: bool) -> list[Outcome]:
        """Run the batch in one transaction: every job in its own savepoint (`alone`),
        or all together, raising _JobFailed if one of them fails."""
        started = time.perf_counter()
        commit_sent = False
        try:
            await db.execute("BEGIN")
            if alone:
                outcomes = [await _run_alone(db, job) for job in batch]
            else:
                outcomes = await _run_together(db, batch)
            commit_sent = True
            await db.execute("COMMIT")
        except _JobFailed:
            await _rollback(db)
            if db.is_closed():
                raise _ConnectionLost(commit_sent=False) from None
            raise
        except Exception as error:
            if _connection_broken(error, db):
                timed_out = isinstance(error, TimeoutError)
                raise _ConnectionLost(commit_sent, timed_out) from error
            await _rollback(db)
            if _is_disk_full(error):
                raise _DiskFull() from error
            failure = _classify(error)
            log.error("a commit of %d jobs failed: %s (%s)", len(batch), failure, error)
            return [(job.future, False, failure) for job in batch]
        self.commits += 1
        self.commit_stats.observe(time.perf_counter() - started, len(batch))
        return outcomes

    # -- the connection ----------------------------------------------------------

    async def _connect(self) -> Connection:
        try:
            connection: Connection = await asyncpg.connect(
                self.dsn,
                timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
                server_settings=self.server_settings,
            )
        except CONNECTION_FAILURES as error:
            raise _open_failure(self.dsn, error) from error
        try:
            # Every store holds this lock shared while connected; `mailslot migrate`
            # takes it alone, so that neither runs while the other writes.
            in_use = not await connection.fetchval(
                f"SELECT pg_try_advisory_lock_shared({NODES_LOCK_KEY})"
            )
        except CONNECTION_FAILURES as error:
            connection.terminate()
            raise _open_failure(self.dsn, error) from error
        if in_use:
            connection.terminate()
            raise StoreUnavailable(
                f"mailslot migrate is copying data into {redact(self.dsn)}; start again once"
                " it is done"
            )
        return connection

    async def _usable_connection(self) -> Connection | None:
        """The writer's connection, connecting again once the back-off has passed; None
        while PostgreSQL cannot be reached."""
        if self._connection is not None:
            if not self._connection.is_closed():
                return self._connection
            log.warning("the database %s closed the connection; reconnecting", redact(self.dsn))
            self._connection = None
        if time.monotonic() < self._retry_at:
            return None
        try:
            self._connection = await self._connect()
        except StoreError as error:
            self._backoff = min(MAX_BACKOFF, max(FIRST_BACKOFF, 2 * self._backoff))
            self._retry_at = time.monotonic() + self._backoff
            log.error("%s; trying again in %.1f s", error, self._backoff)
            return None
        if self._backoff:
            log.warning("connected to the database again")
        self._backoff = 0.0
        return self._connection

    def _drop_connection(self, connection: Connection) -> None:
        log.error("lost the connection to the database %s; reconnecting", redact(self.dsn))
        connection.terminate()
        if self._connection is connection:
            self._connection = None


async def _run_together(db: Connection, batch: list[_Job]) -> list[Outcome]:
    """Consecutive sends, checks or acks each with one statement over arrays; any other
    job on its own."""
    outcomes: list[Outcome] = []
    try:
        for kind, group in itertools.groupby(batch, key=_kind):
            jobs = list(group)
            if kind is Enqueue:
                outcomes += await _write_sends(
                    db, [job for job in jobs if isinstance(job, Enqueue)]
                )
            elif kind is _Fetch and len(jobs) > 1:
                outcomes += _succeeded(jobs, await _Fetch.run_many(db, _runs(jobs, _Fetch)))
            elif kind is _Ack and len(jobs) > 1:
                outcomes += _succeeded(jobs, await _Ack.run_many(db, _runs(jobs, _Ack)))
            else:
                for job in jobs:
                    assert isinstance(job, Call)
                    outcomes.append((job.future, True, await job.run(db)))
    except Exception as error:
        if _is_environmental(error, db):
            raise  # would fail job by job too
        raise _JobFailed() from error
    return outcomes


K = TypeVar("K")


def _runs(jobs: list[_Job], kind: type[K]) -> list[K]:
    return [job.run for job in jobs if isinstance(job, Call) and isinstance(job.run, kind)]


def _succeeded(jobs: list[_Job], results: Sequence[Any]) -> list[Outcome]:
    return [(job.future, True, result) for job, result in zip(jobs, results, strict=True)]


def _kind(job: _Job) -> type | None:
    """What a job may be run together with: jobs of the same kind next to it."""
    if isinstance(job, Enqueue):
        return Enqueue
    if isinstance(job.run, _Fetch | _Ack):
        return type(job.run)
    return None


_SELECT_WAITING = (
    "SELECT q.message_id, coalesce(q.sender, m.sender) AS sender,"
    " coalesce(q.received_at, m.received_at) AS received_at, coalesce(q.text, m.text) AS text"
    " FROM queue q LEFT JOIN messages m ON q.text IS NULL AND m.id = q.message_id"
)


@dataclass(frozen=True, slots=True)
class _Fetch:
    """A check: the oldest `limit` messages above `after` in a user's queue."""

    user_id: int
    limit: int
    after: int

    async def __call__(self, db: Connection) -> Batch:
        rows = await db.fetch(
            f"{_SELECT_WAITING} WHERE q.user_id = $1 AND q.message_id > $2"
            " ORDER BY q.message_id LIMIT $3",
            self.user_id,
            self.after,
            self.limit + 1,
        )
        return self.batch(rows)

    def batch(self, rows: Sequence[Any]) -> Batch:
        messages = [StoredMessage(*row[-4:]) for row in rows[: self.limit]]
        return Batch(messages, more=len(rows) > self.limit)

    @staticmethod
    async def run_many(db: Connection, fetches: Sequence[_Fetch]) -> list[Batch]:
        rows = await db.fetch(
            "SELECT r.n, w.* FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::int[])"
            " AS r(n, user_id, after, wanted) CROSS JOIN LATERAL"
            f" ({_SELECT_WAITING} WHERE q.user_id = r.user_id AND q.message_id > r.after"
            " ORDER BY q.message_id LIMIT r.wanted) w ORDER BY r.n, w.message_id",
            list(range(len(fetches))),
            [fetch.user_id for fetch in fetches],
            [fetch.after for fetch in fetches],
            [fetch.limit + 1 for fetch in fetches],
        )
        by_fetch: list[list[Any]] = [[] for _ in fetches]
        for row in rows:
            by_fetch[row[0]].append(row)
        return [fetch.batch(found) for fetch, found in zip(fetches, by_fetch, strict=True)]


@dataclass(frozen=True, slots=True)
class _Ack:
    """Delete these messages from a user's queue; how many were there."""

    user_id: int
    message_ids: list[int]

    async def __call__(self, db: Connection) -> int:
        return (await self.run_many(db, [self]))[0]

    @staticmethod
    async def run_many(db: Connection, acks: Sequence[_Ack]) -> list[int]:
        deleted = await db.fetch(
            "DELETE FROM queue q USING unnest($1::bigint[], $2::bigint[]) AS a(user_id, id)"
            " WHERE q.user_id = a.user_id AND q.message_id = a.id"
            " RETURNING q.user_id, q.message_id, q.text IS NULL AS shared",
            [ack.user_id for ack in acks for _ in ack.message_ids],
            [message_id for ack in acks for message_id in ack.message_ids],
        )
        await _release_texts(db, [row[1] for row in deleted if row[2]])
        # Each deleted row counts for the first ack that named it, as if run in turn.
        gone = {(row[0], row[1]) for row in deleted}
        counts = []
        for ack in acks:
            mine = gone.intersection((ack.user_id, message_id) for message_id in ack.message_ids)
            gone -= mine
            counts.append(len(mine))
        return counts


async def _run_alone(db: Connection, job: _Job) -> Outcome:
    await db.execute("SAVEPOINT job")
    try:
        if isinstance(job, Enqueue):
            result = (await _write_sends(db, [job]))[0][2]
        else:
            result = await job.run(db)
    except Exception as error:
        if _is_environmental(error, db):
            raise
        failure = _classify(error)
        log.warning("a store operation failed alone: %s (%s)", failure, error)
        await db.execute("ROLLBACK TO SAVEPOINT job")
        await db.execute("RELEASE SAVEPOINT job")
        return job.future, False, failure
    await db.execute("RELEASE SAVEPOINT job")
    return job.future, True, result


async def _write_sends(db: Connection, sends: list[Enqueue]) -> list[Outcome]:
    """Store consecutive sends with a few statements over arrays; their message ids."""
    messages = [message for send in sends for message in send.messages]
    ids: list[int] = []
    if messages:
        ids = sorted(
            await db.fetchval(
                "SELECT array(SELECT nextval('message_ids') FROM generate_series(1, $1))",
                len(messages),
            )
        )
    alone = [(m, i) for i, m in zip(ids, messages, strict=True) if len(m.recipient_ids) == 1]
    if alone:
        await db.execute(
            "INSERT INTO queue (user_id, message_id, sender, received_at, text)"
            " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[],"
            " $5::text[])",
            [m.recipient_ids[0] for m, _ in alone],
            [i for _, i in alone],
            [m.sender for m, _ in alone],
            [m.at for m, _ in alone],
            [m.text for m, _ in alone],
        )
    shared = [(m, i) for i, m in zip(ids, messages, strict=True) if len(m.recipient_ids) > 1]
    if shared:
        await db.execute(
            "INSERT INTO messages (id, sender, received_at, text, refs)"
            " SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::int[])",
            [i for _, i in shared],
            [m.sender for m, _ in shared],
            [m.at for m, _ in shared],
            [m.text for m, _ in shared],
            [len(m.recipient_ids) for m, _ in shared],
        )
        await db.execute(
            "INSERT INTO queue (user_id, message_id)"
            " SELECT * FROM unnest($1::bigint[], $2::bigint[])",
            [user_id for m, _ in shared for user_id in m.recipient_ids],
            [i for m, i in shared for _ in m.recipient_ids],
        )
    return send_outcomes(sends, ids)


async def _release_texts(db: Connection, message_ids: list[int]) -> None:
    """One reference fewer per id given (an id may come more than once: several users
    acknowledged the same broadcast in one batch); delete the texts no queue row points
    at any more. Two statements: the UPDATE locks the rows, so the count it returns is
    the last word even with other nodes acknowledging the same broadcast meanwhile."""
    if message_ids:
        released = await db.fetch(
            "UPDATE messages m SET refs = m.refs - r.n FROM"
            " (SELECT id, count(*) AS n FROM unnest($1::bigint[]) AS id GROUP BY id) r"
            " WHERE m.id = r.id RETURNING m.id, m.refs",
            sorted(message_ids),
        )
        gone = [message_id for message_id, refs in released if refs <= 0]
        if gone:
            await db.execute("DELETE FROM messages WHERE id = ANY($1::bigint[])", gone)


async def _purge_queue(db: Connection, user_id: int) -> int:
    """Delete a user's queue rows and the shared texts no one else waits for."""
    deleted = await db.fetch(
        "DELETE FROM queue WHERE user_id = $1 RETURNING message_id, text IS NULL AS shared",
        user_id,
        timeout=SCAN_TIMEOUT,
    )
    await _release_texts(db, [row[0] for row in deleted if row[1]])
    return len(deleted)


# -- the schema ------------------------------------------------------------------


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration this code knows, in order."""
    found = []
    for entry in resources.files("mailslot.store").joinpath(MIGRATIONS).iterdir():
        match = re.fullmatch(r"(\d{4})_\w+\.sql", entry.name)
        if match:
            found.append((int(match[1]), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def _migrate(db: Connection, dsn: str) -> None:
    """Create or upgrade the schema, one migration per transaction; several stores
    opening at once take turns on an advisory lock for the schema."""
    known = migrations()
    latest = known[-1][0]
    async with db.transaction():
        await db.execute("SELECT pg_advisory_xact_lock(hashtext('mailslot ' || current_schema()))")
        await db.execute(
            "CREATE TABLE IF NOT EXISTS mailslot_schema ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await db.fetchval("SELECT coalesce(max(version), 0) FROM mailslot_schema")
        if current > latest:
            raise StoreError(
                f"the database {redact(dsn)} has Mailslot schema version {current}, newer"
                f" than this Mailslot's {latest}; upgrade Mailslot to use it"
            )
        for version, name, sql in known:
            if version > current:
                await db.execute(sql, timeout=SCAN_TIMEOUT)
                await db.execute(
                    "INSERT INTO mailslot_schema (version, name) VALUES ($1, $2)", version, name
                )
                log.info("database schema: applied %s", name)


async def _settle_deleted_users(db: Connection) -> None:
    """Drop queue rows of deleted users: a send already on its way when its recipient
    was deleted lands after it."""
    async with db.transaction():
        orphans = await db.fetch("DELETE FROM deleted_users RETURNING id")
        for (user_id,) in orphans:
            await _purge_queue(db, user_id)
    if orphans:
        log.info("removed the mail of %d deleted users", len(orphans))


# -- errors ----------------------------------------------------------------------

# SQLSTATEs (and classes of them, by their first two characters) that are the database
# server's state, not the job's: running the jobs one by one would not help.
_UNAVAILABLE = {
    "08": "the server lost its connection to the database",
    "25006": "the server's database is read-only (a standby?)",
    "53200": "the database server is out of memory",
    "53300": "the database server has too many connections",
    "57P01": "the database server is shutting down",
    "57P02": "the database server crashed",
    "57P03": "the database server is starting up or shutting down",
    "57014": "the database server did not answer in time",
    "58": "the database server cannot read or write its files",
    "XX": "the database server reported internal damage; the operator must look at it",
}


def _sqlstate(error: BaseException) -> str:
    return str(getattr(error, "sqlstate", "") or "")


def _unavailable_reason(error: BaseException) -> str | None:
    code = _sqlstate(error)
    return _UNAVAILABLE.get(code) or _UNAVAILABLE.get(code[:2])


def _is_disk_full(error: BaseException) -> bool:
    return _sqlstate(error) == "53100"


def _connection_broken(error: BaseException, db: Connection) -> bool:
    return db.is_closed() or isinstance(
        error, OSError | TimeoutError | asyncpg.PostgresConnectionError
    )


def _is_environmental(error: BaseException, db: Connection) -> bool:
    return (
        _connection_broken(error, db)
        or _is_disk_full(error)
        or _unavailable_reason(error) is not None
    )


def _classify(error: BaseException) -> StoreError:
    if isinstance(error, StoreError):
        return error
    if _is_disk_full(error):
        return StorageFull(DISK_FULL)
    reason = _unavailable_reason(error)
    if reason is not None:
        return StoreUnavailable(reason)
    if isinstance(error, OSError | TimeoutError | asyncpg.InterfaceError):
        return StoreUnavailable(CONNECTION_LOST)
    return StoreError("the database refused this operation")


async def close_connection(db: Connection, timeout: float) -> None:
    """Close politely, or drop the connection where that fails or takes too long."""
    try:
        await db.close(timeout=timeout)
    except CONNECTION_FAILURES:
        db.terminate()


async def _rollback(db: Connection) -> None:
    if db.is_closed():
        return
    try:
        await db.execute("ROLLBACK")
    except CONNECTION_FAILURES:
        db.terminate()  # a connection in an unknown state: the next batch gets a new one


def _open_failure(dsn: str, error: BaseException) -> StoreError:
    """One sentence for the operator on why the database could not be used."""
    if isinstance(error, StoreError):
        return error
    where = redact(dsn)
    if _is_disk_full(error):
        return StorageFull(f"the disk of the database server for {where} is full")
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return StoreUnavailable(f"the database {where} does not exist; create it first")
    if isinstance(
        error, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError
    ):
        return StoreUnavailable(f"the database server refused the login for {where}: {error}")
    if isinstance(error, OSError | TimeoutError):
        reason = (
            "it did not answer in time"
            if isinstance(error, TimeoutError)
            else error.strerror or error
        )
        return StoreUnavailable(f"cannot connect to the database {where}: {reason}")
    return StoreUnavailable(f"cannot use the database {where}: {error}")
