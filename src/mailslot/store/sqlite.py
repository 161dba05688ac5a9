"""The embedded store: one SQLite file, one writer thread, group commit.

Every operation becomes a job for a dedicated database thread. The thread
takes all jobs waiting at that moment (consecutive sends together, with
executemany; jobs that may fail alone, such as a new user, in a savepoint),
commits the lot with one fsync (WAL, synchronous=FULL) and only then
resolves the callers' futures. Concurrent senders therefore share commits,
and nothing is acknowledged before it is on disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mailslot.store.base import (
    Batch,
    CommitStats,
    NewMessage,
    StoredMessage,
    StoreError,
    UserRecord,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_JOBS_PER_COMMIT = 5_000
CACHE_KIB = 64 * 1024
CHECKPOINT_PAGES = 16_384  # 64 MiB of WAL at the default page size

# A message with one recipient lives in its queue row alone: one b-tree insert to
# store it, one delete to remove it, and a user's queue stays together on a few
# pages. A message with several recipients keeps its text once in `messages`, and
# its queue rows only point at it (text NULL).
_SCHEMA = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    text TEXT NOT NULL,
    refs INTEGER NOT NULL
);
CREATE TABLE queue (
    user_id INTEGER NOT NULL REFERENCES users(id),
    message_id INTEGER NOT NULL,
    sender TEXT,
    received_at INTEGER,
    text TEXT,
    PRIMARY KEY (user_id, message_id)
) WITHOUT ROWID;
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters VALUES ('last_message_id', 0);
"""

T = TypeVar("T")


@dataclass(slots=True)
class _Call:
    """Any operation; `isolated` ones run in a savepoint so their failure spoils no other."""

    run: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    isolated: bool = False


@dataclass(slots=True)
class _Enqueue:
    """Sends: consecutive ones are written together with executemany."""

    messages: Sequence[NewMessage]
    future: asyncio.Future[Any]


_Job = _Call | _Enqueue
_Outcome = tuple[asyncio.Future[Any], bool, Any]


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self.commits = 0  # for tests and metrics: how many transactions reached disk
        self.commit_stats = CommitStats()  # for metrics

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="mailslot-sqlite", daemon=True)
        self._thread.start()
        await asyncio.get_running_loop().run_in_executor(None, self._ready.wait)
        if self._open_error is not None:
            raise StoreError(f"cannot open {self.path}: {self._open_error}")

    async def close(self) -> None:
        if self._thread is None:
            return
        self._jobs.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        self._thread = None

    # -- the interface -----------------------------------------------------

    async def load_users(self) -> list[UserRecord]:
        def load(db: sqlite3.Connection) -> list[UserRecord]:
            rows = db.execute(
                "SELECT id, key, name, password_hash, created_at FROM users ORDER BY id"
            )
            return [UserRecord(*row) for row in rows]

        return await self._submit(load)

    async def waiting_counts(self) -> dict[int, int]:
        def count(db: sqlite3.Connection) -> dict[int, int]:
            rows = db.execute("SELECT user_id, count(*) FROM queue GROUP BY user_id")
            return dict(rows.fetchall())

        return await self._submit(count)

    async def create_user(
        self, key: str, name: str, password_hash: str | None, at: int
    ) -> UserRecord:
        def create(db: sqlite3.Connection) -> UserRecord:
            cursor = db.execute(
                "INSERT INTO users (key, name, password_hash, created_at) VALUES (?, ?, ?, ?)",
                (key, name, password_hash, at),
            )
            assert cursor.lastrowid is not None
            return UserRecord(cursor.lastrowid, key, name, password_hash, at)

        return await self._submit(create, isolated=True)

    async def set_password(self, user_id: int, password_hash: str) -> None:
        def update(db: sqlite3.Connection) -> None:
            db.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))

        await self._submit(update, isolated=True)

    def enqueue(self, messages: Sequence[NewMessage]) -> asyncio.Future[list[int]]:
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._put(_Enqueue(messages, future))
        return future

    def fetch(self, user_id: int, limit: int, after: int = 0) -> asyncio.Future[Batch]:
        def select(db: sqlite3.Connection) -> Batch:
            rows = db.execute(
                "SELECT q.message_id, coalesce(q.sender, m.sender),"
                " coalesce(q.received_at, m.received_at), coalesce(q.text, m.text)"
                " FROM queue q LEFT JOIN messages m ON q.text IS NULL AND m.id = q.message_id"
                " WHERE q.user_id = ? AND q.message_id > ? ORDER BY q.message_id LIMIT ?",
                (user_id, after, limit + 1),
            ).fetchall()
            messages = [StoredMessage(*row) for row in rows[:limit]]
            return Batch(messages, more=len(rows) > limit)

        return self._submit(select)

    def ack(self, user_id: int, message_ids: Sequence[int]) -> asyncio.Future[int]:
        def delete(db: sqlite3.Connection) -> int:
            deleted = db.execute(
                "DELETE FROM queue WHERE user_id = ?"
                " AND message_id IN (SELECT value FROM json_each(?))"
                # not "text IS NULL": SQLite 3.40 gets that wrong inside RETURNING
                " RETURNING message_id, typeof(text) = 'null'",
                (user_id, json.dumps(list(message_ids))),
            ).fetchall()
            shared = [(message_id,) for message_id, is_shared in deleted if is_shared]
            if shared:
                db.executemany("UPDATE messages SET refs = refs - 1 WHERE id = ?", shared)
                db.executemany("DELETE FROM messages WHERE id = ? AND refs <= 0", shared)
            return len(deleted)

        return self._submit(delete)

    # -- the database thread -------------------------------------------------

    def _submit(
        self, run: Callable[[sqlite3.Connection], T], *, isolated: bool = False
    ) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._put(_Call(run, future, isolated))
        return future

    def _put(self, job: _Job) -> None:
        if self._thread is None:
            job.future.set_exception(StoreError("the store is closed"))
        else:
            self._jobs.put(job)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = OFF")
        # Sends land on random users' pages: keep the hot pages in memory, and let the
        # WAL grow before copying it back, so a page written by many commits is
        # checkpointed once.
        db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        db.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        elif version != SCHEMA_VERSION:
            raise StoreError(
                f"the data file has schema version {version}; this Mailslot knows {SCHEMA_VERSION}"
            )
        return db

    def _run(self) -> None:
        try:
            db = self._connect()
        except Exception as error:  # reported to open()
            self._open_error = error
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                first = self._jobs.get()
                if first is None:
                    break
                batch = [first]
                stop = False
                while len(batch) < MAX_JOBS_PER_COMMIT:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stop = True
                        break
                    batch.append(job)
                self._run_batch(db, batch)
                if stop:
                    break
        finally:
            db.close()

    def _run_batch(self, db: sqlite3.Connection, batch: list[_Job]) -> None:
        outcomes: list[_Outcome] = []
        sends: list[_Enqueue] = []
        started = time.perf_counter()
        try:
            db.execute("BEGIN IMMEDIATE")
            for job in batch:
                if isinstance(job, _Enqueue):
                    sends.append(job)
                    continue
                if sends:
                    outcomes += self._write_sends(db, sends)
                    sends = []
                outcomes.append(self._call(db, job))
            if sends:
                outcomes += self._write_sends(db, sends)
            db.execute("COMMIT")
            self.commits += 1
            self.commit_stats.observe(time.perf_counter() - started, len(batch))
        except Exception as error:  # the thread must outlive any bad batch
            log.error("commit of %d jobs failed: %s", len(batch), error)
            if db.in_transaction:
                db.execute("ROLLBACK")
            failure = StoreError(f"the database could not commit: {error}")
            outcomes = [(job.future, False, failure) for job in batch]
        batch[0].future.get_loop().call_soon_threadsafe(_resolve, outcomes)

    @staticmethod
    def _call(db: sqlite3.Connection, job: _Call) -> _Outcome:
        if not job.isolated:
            return job.future, True, job.run(db)
        db.execute("SAVEPOINT job")
        try:
            result = job.run(db)
        except Exception as error:
            db.execute("ROLLBACK TO job")
            return job.future, False, StoreError(str(error))
        finally:
            db.execute("RELEASE job")
        return job.future, True, result

    @staticmethod
    def _write_sends(db: sqlite3.Connection, sends: list[_Enqueue]) -> list[_Outcome]:
        """Store consecutive sends with a few executemany calls; their message ids."""
        messages = [message for send in sends for message in send.messages]
        (last_id,) = db.execute(
            "SELECT value FROM counters WHERE name = 'last_message_id'"
        ).fetchone()
        ids = range(last_id + 1, last_id + 1 + len(messages))
        db.execute("UPDATE counters SET value = ? WHERE name = 'last_message_id'", (ids[-1],))
        alone = [
            (m.recipient_ids[0], message_id, m.sender, m.at, m.text)
            for message_id, m in zip(ids, messages, strict=True)
            if len(m.recipient_ids) == 1
        ]
        if alone:
            db.executemany(
                "INSERT INTO queue (user_id, message_id, sender, received_at, text)"
                " VALUES (?, ?, ?, ?, ?)",
                alone,
            )
        if len(alone) < len(messages):
            shared = [
                (message_id, m)
                for message_id, m in zip(ids, messages, strict=True)
                if len(m.recipient_ids) != 1
            ]
            db.executemany(
                "INSERT INTO messages (id, sender, received_at, text, refs) VALUES (?, ?, ?, ?, ?)",
                [(i, m.sender, m.at, m.text, len(m.recipient_ids)) for i, m in shared],
            )
            db.executemany(
                "INSERT INTO queue (user_id, message_id) VALUES (?, ?)",
                [(user_id, i) for i, m in shared for user_id in m.recipient_ids],
            )
        outcomes: list[_Outcome] = []
        start = 0
        for send in sends:
            end = start + len(send.messages)
            outcomes.append((send.future, True, list(ids[start:end])))
            start = end
        return outcomes

    # -- for `mailslot admin` ---------------------------------------------------

    async def delete_user(self, user_id: int) -> int:
        """Delete a user and its queue; how many messages were waiting for it."""

        def delete(db: sqlite3.Connection) -> int:
            waiting = _purge_queue(db, user_id)
            db.execute("DELETE FROM users WHERE id = ?", (user_id,))
            return waiting

        return await self._submit(delete, isolated=True)

    async def purge(self, user_id: int) -> int:
        """Empty a user's queue; how many messages were in it."""
        return await self._submit(lambda db: _purge_queue(db, user_id), isolated=True)

    async def check_writable(self) -> None:
        """A write that changes nothing, committed like any other (for /readyz)."""

        def touch(db: sqlite3.Connection) -> None:
            db.execute("UPDATE counters SET value = value WHERE name = 'last_message_id'")

        await self._submit(touch, isolated=True)

    async def backup(self, target: Path) -> None:
        """A consistent copy of the database at `target`, made with SQLite's online
        backup API on a connection of its own, while the server goes on writing."""

        def copy() -> None:
            source = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:
                destination = sqlite3.connect(target)
                try:
                    source.backup(destination)
                finally:
                    destination.close()
            finally:
                source.close()

        await asyncio.get_running_loop().run_in_executor(None, copy)


def _purge_queue(db: sqlite3.Connection, user_id: int) -> int:
    """Delete a user's queue rows and the shared texts no one else waits for."""
    shared = db.execute(
        "SELECT message_id FROM queue WHERE user_id = ? AND text IS NULL", (user_id,)
    ).fetchall()
    deleted = db.execute("DELETE FROM queue WHERE user_id = ?", (user_id,)).rowcount
    if shared:
        db.executemany("UPDATE messages SET refs = refs - 1 WHERE id = ?", shared)
        db.executemany("DELETE FROM messages WHERE id = ? AND refs <= 0", shared)
    return int(deleted)


def _resolve(outcomes: list[_Outcome]) -> None:
    for future, succeeded, value in outcomes:
        if future.cancelled():
            continue
        if succeeded:
            future.set_result(value)
        else:
            future.set_exception(value)
