"""Copying a server's users and queues between an SQLite database file and PostgreSQL,
in either direction (`mailslot migrate` runs it; all of its SQL lives here).

What is copied: users (ids, password hashes, first spellings, created times), the
messages waiting in their queues (ids, senders, reception times, texts) and the id
counters, so that no id the source ever handed out is handed out again by the target.

Safe to run again: rows already in the target are left as they are, and the target
must hold nothing the source does not (an empty target, or an earlier copy of this
source). The counts are verified after the copy. A PostgreSQL database (schema) that
Mailslot servers are connected to is refused (an advisory lock they hold shared); the
caller locks a data dir the way a server would.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mailslot.store import redact
from mailslot.store.sqlite import SCHEMA_VERSION, SQLiteStore

if TYPE_CHECKING:
    import asyncpg

CHUNK = 50_000  # rows per INSERT into PostgreSQL

Counts = tuple[int, int, int]  # users, queue rows, shared texts
UserRow = tuple[int, str, str, str | None, int]  # id, key, name, password hash, created at
QueueRow = tuple[int, int, str | None, int | None, str | None]  # user, message, sender, at, text
TextRow = tuple[int, str, int, str]  # id, sender, received at, text (several recipients)

_USERS = "SELECT id, key, name, password_hash, created_at FROM users ORDER BY id"
_QUEUE = (
    "SELECT user_id, message_id, sender, received_at, text FROM queue"
    " WHERE user_id IN (SELECT id FROM users) ORDER BY user_id, message_id"
)
_TEXTS = (
    "SELECT id, sender, received_at, text FROM messages WHERE id IN"
    " (SELECT message_id FROM queue WHERE text IS NULL AND user_id IN (SELECT id FROM users))"
    " ORDER BY id"
)


class MigrationFailed(Exception):
    """str() is the sentence to print."""


@dataclass
class Snapshot:
    """Everything a store holds that a migration copies. Queue rows of users that no
    longer exist (mail that landed after its recipient was deleted) are left behind."""

    users: list[UserRow]
    queue: list[QueueRow]
    texts: list[TextRow]
    last_user_id: int
    last_message_id: int

    def counts(self) -> Counts:
        return len(self.users), len(self.queue), len(self.texts)

    def refs(self) -> Counter[int]:
        """How many queue rows point at each shared text."""
        return Counter(row[1] for row in self.queue if row[4] is None)


class Side(Protocol):
    label: str

    async def read(self) -> Snapshot: ...

    async def write(self, snapshot: Snapshot) -> tuple[Counts, Counts]:
        """Copy what is missing; what the target held before and holds after."""
        ...


def _check_owned_users(label: str, existing: Sequence[tuple[int, str]], source: Snapshot) -> None:
    """The target may hold only users the source has, under the same ids."""
    known = {(user[0], user[1]) for user in source.users}
    foreign = [key for user_id, key in existing if (user_id, key) not in known]
    if foreign:
        raise MigrationFailed(
            f"{label} already holds users that the source does not have under the same id"
            f" (such as {foreign[0]!r}); migrate into an empty database or data dir"
        )


# -- SQLite -------------------------------------------------------------------------


class SQLiteSide:
    """An SQLite database file (a data dir's, or one on its own)."""

    def __init__(self, database: Path, label: str, *, is_source: bool) -> None:
        if is_source and not database.exists():
            raise MigrationFailed(f"there is no Mailslot database at {database}")
        self.database = database
        self.label = label

    async def read(self) -> Snapshot:
        db = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise MigrationFailed(
                    f"{self.database} is not a Mailslot database this version knows"
                    f" (schema version {version}, expected {SCHEMA_VERSION})"
                )
            counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
            users = db.execute(_USERS).fetchall()
            return Snapshot(
                users=users,
                queue=db.execute(_QUEUE).fetchall(),
                texts=db.execute(_TEXTS).fetchall(),
                last_user_id=max(counters.get("last_user_id", 0), *(u[0] for u in users), 0),
                last_message_id=counters.get("last_message_id", 0),
            )
        finally:
            db.close()

    async def write(self, snapshot: Snapshot) -> tuple[Counts, Counts]:
        store = SQLiteStore(self.database)  # creates or checks the schema
        await store.open()
        await store.close()
        db = sqlite3.connect(self.database, isolation_level=None)

        def counts() -> Counts:
            users, queued, texts = (
                int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for table in ("users", "queue", "messages")
            )
            return users, queued, texts

        try:
            db.execute("BEGIN IMMEDIATE")
            before = counts()
            existing = db.execute("SELECT id, key FROM users").fetchall()
            _check_owned_users(self.label, existing, snapshot)
            db.executemany("INSERT OR IGNORE INTO users VALUES (?, ?, ?, ?, ?)", snapshot.users)
            refs = snapshot.refs()
            db.executemany(
                "INSERT OR IGNORE INTO messages VALUES (?, ?, ?, ?, ?)",
                [(*text, refs[text[0]]) for text in snapshot.texts],
            )
            db.executemany("INSERT OR IGNORE INTO queue VALUES (?, ?, ?, ?, ?)", snapshot.queue)
            for name, value in (
                ("last_user_id", snapshot.last_user_id),
                ("last_message_id", snapshot.last_message_id),
            ):
                db.execute(
                    "INSERT INTO counters VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
                    (name, value),
                )
            db.execute("COMMIT")
            after = counts()
        finally:
            db.close()
        return before, after


# -- PostgreSQL -----------------------------------------------------------------------


class PostgresSide:
    def __init__(self, url: str) -> None:
        self.url = url
        self.label = redact(url)

    async def _connect(self) -> asyncpg.Connection[asyncpg.Record]:
        import asyncpg

        from mailslot.store.postgres import CONNECT_TIMEOUT, NODES_LOCK_KEY

        try:
            connection: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
                self.url, timeout=CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError, asyncpg.PostgresError) as error:
            raise MigrationFailed(f"cannot connect to {self.label}: {error}") from error
        # Held until the connection closes: no Mailslot server starts meanwhile.
        if not await connection.fetchval(f"SELECT pg_try_advisory_lock({NODES_LOCK_KEY})"):
            await connection.close()
            raise MigrationFailed(f"Mailslot servers are using {self.label}; stop them first")
        return connection

    async def read(self) -> Snapshot:
        from mailslot.store.postgres import migrations

        connection = await self._connect()
        try:
            async with connection.transaction(isolation="repeatable_read", readonly=True):
                if await connection.fetchval("SELECT to_regclass('mailslot_schema')") is None:
                    raise MigrationFailed(f"{self.label} holds no Mailslot data")
                version = await connection.fetchval("SELECT max(version) FROM mailslot_schema")
                latest = migrations()[-1][0]
                if version != latest:
                    raise MigrationFailed(
                        f"{self.label} has Mailslot schema version {version}; this Mailslot"
                        f" copies version {latest} (start a server of this version on it once)"
                    )
                return Snapshot(
                    users=_tuples(await connection.fetch(_USERS)),
                    queue=_tuples(await connection.fetch(_QUEUE)),
                    texts=_tuples(await connection.fetch(_TEXTS)),
                    last_user_id=await _last_value(connection, "user_ids"),
                    last_message_id=await _last_value(connection, "message_ids"),
                )
        finally:
            await connection.close()

    async def write(self, snapshot: Snapshot) -> tuple[Counts, Counts]:
        from mailslot.store.postgres import PostgresStore

        store = PostgresStore(self.url)  # creates or upgrades the schema
        await store.open()
        await store.close()
        connection = await self._connect()
        try:
            async with connection.transaction():
                await connection.execute(
                    "LOCK TABLE users, messages, queue IN SHARE ROW EXCLUSIVE MODE"
                )
                before = await _pg_counts(connection)
                existing = await connection.fetch("SELECT id, key FROM users")
                _check_owned_users(self.label, [(row[0], row[1]) for row in existing], snapshot)
                refs = snapshot.refs()
                await _insert(connection, "users", "bigint text text text bigint", snapshot.users)
                await _insert(
                    connection,
                    "messages",
                    "bigint text bigint text int",
                    [(*text, refs[text[0]]) for text in snapshot.texts],
                )
                await _insert(connection, "queue", "bigint bigint text bigint text", snapshot.queue)
                for sequence, value in (
                    ("user_ids", snapshot.last_user_id),
                    ("message_ids", snapshot.last_message_id),
                ):
                    if value > await _last_value(connection, sequence):
                        await connection.execute(f"SELECT setval('{sequence}', $1)", value)
            after = await _pg_counts(connection)
        finally:
            await connection.close()
        return before, after


async def _pg_counts(connection: asyncpg.Connection[asyncpg.Record]) -> Counts:
    users, queued, texts = [
        int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
        for table in ("users", "queue", "messages")
    ]
    return users, queued, texts


def _tuples(records: list[asyncpg.Record]) -> list[Any]:
    return [tuple(record) for record in records]


async def _last_value(connection: asyncpg.Connection[asyncpg.Record], sequence: str) -> int:
    """The last id the sequence handed out (0: none yet)."""
    row = await connection.fetchrow(f"SELECT last_value, is_called FROM {sequence}")
    assert row is not None
    return int(row[0]) if row[1] else int(row[0]) - 1


async def _insert(
    connection: asyncpg.Connection[asyncpg.Record],
    table: str,
    types: str,
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """Rows not there yet, a chunk at a time, one array per column."""
    casts = ", ".join(f"${n}::{kind}[]" for n, kind in enumerate(types.split(), start=1))
    for start in range(0, len(rows), CHUNK):
        columns = [list(column) for column in zip(*rows[start : start + CHUNK], strict=True)]
        await connection.execute(
            f"INSERT INTO {table} SELECT * FROM unnest({casts}) ON CONFLICT DO NOTHING", *columns
        )


async def copy(source: Side, target: Side) -> str:
    """Copy, verify, and say what was done in one sentence."""
    snapshot = await source.read()
    expected = snapshot.counts()
    before, after = await target.write(snapshot)
    if after != expected:
        raise MigrationFailed(
            f"copied, but {target.label} now holds {_describe(after)} where {source.label}"
            f" holds {_describe(expected)}; was the target used after an earlier migration?"
        )
    if before == after:
        return f"{target.label} already held everything in {source.label}: {_describe(after)}"
    return f"copied {_describe(expected)} from {source.label} to {target.label}; counts verified"


def _describe(counts: Counts) -> str:
    users, queued, texts = counts
    return (
        f"{_count(users, 'user')} and {_count(queued, 'waiting message')}"
        f" ({_count(texts, 'text')} shared by several recipients)"
    )


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" if number == 1 else f"{number} {thing}s"
