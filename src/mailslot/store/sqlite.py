"""The embedded store: one SQLite file, one writer thread, group commit.

Every operation becomes a job for a dedicated database thread. The thread
takes the jobs waiting at that moment, commits them together with one fsync
(WAL, synchronous=FULL) and only then resolves the callers' futures, so
concurrent senders share commits and nothing is acknowledged before it is on
disk.

Fair sharing: the jobs waiting are batched by store/batching.py, one job from
each owner in turn.

Failing alone: a batch first runs optimistically, all jobs in one transaction
(consecutive sends written together with executemany). If any job fails, the
batch is rolled back and run again with each job in its own savepoint, so only
the jobs that fail get an error.

Headroom: below a free-space floor on the data file's file system, new sends and
new users are refused with StorageFull, while checks and acks, which free space,
still run. New pages take space twice until checkpointed (WAL, then database), so
the WAL is kept within half the default floor and truncated when free space nears
the floor. When something else fills the disk, a file of that size
(`<database>-reserve`, set aside once free space is below 8 times the default
floor) is given up so that the checkpoint and acks still fit; it is set aside again
once space is back. The free space is looked at (statvfs) again once what was
written since the last look could have brought it within twice the floor, or after
8 MiB or a second; within twice the floor, before every batch.

Commit delay (PostgreSQL's commit_delay with commit_siblings' idea): a batch that
writes fewer than COMMIT_DELAY_ROWS queue rows waits COMMIT_DELAY (1 ms) for company
when the last commit ended within COMMIT_DELAY_WHEN_BUSY and more than one user is
among the jobs (waiting now, or served by the last batch). Lone sends then share their
fsync a few at a time: at 5,000 a second from 4 users, server CPU per message fell by
about half for about 1 ms more p50 and a p99 still under 5 ms (docs/benchmarks.md,
"Issue 12, second round"). One user sending one message after another never waits,
nor does a quiet server, nor a batch big enough to pay for its fsync.

Cost at open: PRAGMA quick_check reads the whole file; about 0.26 s for a
130 MiB database holding 1,000,000 queued messages (page cache warm).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import os
import queue
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

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

SCHEMA_VERSION = 1
CACHE_KIB = 64 * 1024
CHECKPOINT_PAGES = 16_384  # 64 MiB of WAL at the default page size
WAL_TRUNCATE_INTERVAL = 0.5  # seconds: near the free-space floor, give back WAL space this often
MAX_FREE_SPACE_FLOOR = 2 * CHECKPOINT_PAGES * 4096
MIN_FREE_SPACE_FLOOR = 256 * 1024
RESERVE_WHEN_FREE_BELOW = 16  # times the reserve's size (8 times the default floor)
FREE_SPACE_LOOK_BYTES = 8 * 1024 * 1024  # written (pages that may be dirtied) between statvfs
FREE_SPACE_LOOK_INTERVAL = 1.0  # seconds: other programs write to the disk too
ID_BLOCK = 1024  # message ids reserved with one write of the counter
COMMIT_DELAY = 0.001  # seconds a small batch waits for company while writers are busy
COMMIT_DELAY_WHEN_BUSY = 0.002  # ... that is, when the last commit ended this recently
COMMIT_DELAY_ROWS = 16  # ... and the batch writes fewer queue rows than this

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
_Run = Callable[[sqlite3.Connection], Any]
_Job = Call[_Run] | Enqueue


def default_free_space_floor(file_system_bytes: int) -> int:
    """5% of the file system, but at least 256 KiB (room for acks on a tiny disk)
    and at most 128 MiB (room for a full WAL's checkpoint and for acks on a big one)."""
    return min(MAX_FREE_SPACE_FLOOR, max(MIN_FREE_SPACE_FLOOR, file_system_bytes // 20))


class _DiskFull(Exception):
    """A batch failed for want of disk space."""

    def __init__(self, failure: StorageFull) -> None:
        super().__init__(str(failure))
        self.failure = failure


class _JobFailed(Exception):
    """A job failed in a way that spoils the transaction: in an optimistic batch,
    any failure (run the jobs again, each alone); alone, damage (`job`, which failed
    with `outcome`: run the others again without it)."""

    def __init__(self, job: _Job | None = None, outcome: Outcome | None = None) -> None:
        super().__init__()
        self.job = job
        self.outcome = outcome


class SQLiteStore:
    def __init__(
        self,
        path: Path,
        *,
        free_space_floor: int | None = None,
        check_integrity: bool = True,
    ) -> None:
        """`free_space_floor`: bytes kept free on the data file's file system (None:
        default_free_space_floor); `check_integrity`: run PRAGMA quick_check at open."""
        self.path = path
        self.free_space_floor = free_space_floor
        self.check_integrity = check_integrity
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._waiting: FairBatches[_Run] = FairBatches()  # the database thread's
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._open_error: StoreError | None = None
        # Outcomes of committed batches, for the loop: one wake-up of the loop resolves
        # every batch committed until it runs.
        self._done: deque[list[Outcome]] = deque()
        self._handing_back = False
        self._wal_truncated_at = -math.inf
        self._free_at_look = 0  # bytes free at the last statvfs
        self._written_since_look = 0  # bytes that batches may have written since
        self._look_again_after = 0  # bytes written
        self._look_by = -math.inf  # monotonic seconds
        self._low_on_space = False
        self._page_size = 4096  # the database's, once open
        self._reserve = path.with_name(path.name + "-reserve")
        self._reserve_bytes = 0
        self._reserve_released = True
        self._committed_at = -math.inf  # monotonic seconds
        self._message_ids = _MessageIds()
        self.commits = 0  # for tests and metrics: how many transactions reached disk
        self.delayed_commits = 0  # of which waited COMMIT_DELAY for company
        # A number made when the database was created, kept by copies and backups: the
        # data directory's marker holds it, so another database put in its place is seen.
        self.database_id: int | None = None
        self.commit_stats = CommitStats()  # for metrics

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mailslot-sqlite", daemon=True)
        self._thread.start()
        await asyncio.get_running_loop().run_in_executor(None, self._ready.wait)
        if self._open_error is not None:
            self._thread = None
            raise self._open_error

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
            users = [UserRecord(*row) for row in rows]
            self._waiting.names.update((user.id, user.name) for user in users)
            return users

        return await self._call(load)

    async def waiting_counts(self) -> dict[int, int]:
        def count(db: sqlite3.Connection) -> dict[int, int]:
            rows = db.execute("SELECT user_id, count(*) FROM queue GROUP BY user_id")
            return dict(rows.fetchall())

        return await self._call(count)

    async def create_user(
        self, key: str, name: str, password_hash: str | None, at: int
    ) -> UserRecord:
        def create(db: sqlite3.Connection) -> UserRecord | None:
            if db.execute("SELECT 1 FROM users WHERE key = ?", (key,)).fetchone():
                return None
            # Ids come from a counter, never from max(id) + 1: a deleted user's id is not
            # handed out again, so mail still on its way to it can never reach a newcomer.
            (user_id,) = db.execute(
                "UPDATE counters SET value = value + 1 WHERE name = 'last_user_id' RETURNING value"
            ).fetchone()
            db.execute(
                "INSERT INTO users (id, key, name, password_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (user_id, key, name, password_hash, at),
            )
            self._waiting.names[user_id] = name
            return UserRecord(user_id, key, name, password_hash, at)

        record = await self._call(create, grows=True)
        if record is None:
            raise NameTaken(f"the name {name!r} is taken")
        return record

    async def set_password(self, user_id: int, password_hash: str) -> None:
        def update(db: sqlite3.Connection) -> None:
            db.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))

        await self._call(update, user_id)

    def enqueue(self, messages: Sequence[NewMessage]) -> asyncio.Future[list[int]]:
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._submit(Enqueue(messages, future))
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

        return self._call(select, user_id, writes=False)

    def ack(self, user_id: int, message_ids: Sequence[int]) -> asyncio.Future[int]:
        def delete(db: sqlite3.Connection) -> int:
            ids = json.dumps(list(message_ids))
            # First the rows that hold their text (1-to-1 mail), without RETURNING: it
            # made the ack of a check's nine messages three times dearer.
            deleted = db.execute(
                "DELETE FROM queue WHERE user_id = ?"
                " AND message_id IN (SELECT value FROM json_each(?)) AND text IS NOT NULL",
                (user_id, ids),
            ).rowcount
            if deleted == len(message_ids):
                return deleted
            shared = db.execute(
                "DELETE FROM queue WHERE user_id = ?"
                " AND message_id IN (SELECT value FROM json_each(?))"
                " RETURNING message_id",  # what is left points at a shared text
                (user_id, ids),
            ).fetchall()
            if shared:
                db.executemany("UPDATE messages SET refs = refs - 1 WHERE id = ?", shared)
                db.executemany("DELETE FROM messages WHERE id = ? AND refs <= 0", shared)
            return deleted + len(shared)

        return self._call(delete, user_id, rows=max(1, len(message_ids)))

    # -- for `mailslot admin` and /readyz ----------------------------------------

    async def delete_user(self, user_id: int) -> int:
        """Delete a user and its queue; how many messages were waiting for it."""

        def delete(db: sqlite3.Connection) -> int:
            waiting = _purge_queue(db, user_id)
            db.execute("DELETE FROM users WHERE id = ?", (user_id,))
            db.execute("INSERT OR IGNORE INTO deleted_users VALUES (?)", (user_id,))
            return waiting

        return await self._call(delete, user_id)

    async def purge(self, user_id: int) -> int:
        """Empty a user's queue; how many messages were in it."""
        return await self._call(lambda db: _purge_queue(db, user_id), user_id)

    async def check_writable(self) -> None:
        """A write that changes nothing, committed like any other (for /readyz)."""

        def touch(db: sqlite3.Connection) -> None:
            db.execute("UPDATE counters SET value = value WHERE name = 'last_message_id'")

        await self._call(touch)

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

    # -- handing jobs to the database thread ---------------------------------

    def _call(
        self,
        run: Callable[[sqlite3.Connection], T],
        user_id: int | None = None,
        *,
        rows: int = 1,
        grows: bool = False,
        writes: bool = True,
    ) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._submit(Call(run, future, user_id, rows, grows, writes))
        return future

    def _submit(self, job: _Job) -> None:
        if self._thread is None:
            job.future.set_exception(StoreUnavailable("the store is closed"))
        else:
            self._jobs.put(job)

    # -- the database thread -------------------------------------------------

    def _run(self) -> None:
        try:
            db = self._connect()
        except Exception as error:  # reported to open()
            self._open_error = _open_failure(self.path, error)
            self._ready.set()
            return
        self._ready.set()
        stopping = False
        try:
            while not (stopping and not self._waiting):
                stopping = self._take_new_jobs(block=not self._waiting) or stopping
                if self._waiting and not stopping and self._company_due():
                    self.delayed_commits += 1
                    time.sleep(COMMIT_DELAY)
                    stopping = self._take_new_jobs(block=False) or stopping
                if self._waiting:
                    self._run_batch(db, self._waiting.next_batch())
        finally:
            db.close()

    def _company_due(self) -> bool:
        """Whether to wait COMMIT_DELAY for more jobs before committing these."""
        waiting = self._waiting
        return (
            time.monotonic() - self._committed_at < COMMIT_DELAY_WHEN_BUSY
            and max(waiting.owners(), waiting.last_owners) > 1
            and waiting.few_writes(COMMIT_DELAY_ROWS)
        )

    def _take_new_jobs(self, *, block: bool) -> bool:
        """Sort the jobs handed over into their owners' FIFOs; True once close() was called."""
        try:
            job = self._jobs.get() if block else self._jobs.get_nowait()
            while True:
                if job is None:
                    return True
                self._waiting.add(job)
                job = self._jobs.get_nowait()
        except queue.Empty:
            return False

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # SQLite creates a database 0644 and gives its -wal and -shm files the
        # database's mode: create it private, whatever the umask.
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = OFF")
            # Sends land on random users' pages: keep the hot pages in memory, and let the
            # WAL grow before copying it back, so a page written by many commits is
            # checkpointed once. But new pages take space twice until checkpointed (in
            # the WAL, then in the database): keep the WAL within half the default floor,
            # so a checkpoint always fits in the headroom.
            stat = os.statvfs(self.path)
            default_floor = default_free_space_floor(stat.f_blocks * stat.f_frsize)
            self._page_size = db.execute("PRAGMA page_size").fetchone()[0]
            checkpoint_pages = min(CHECKPOINT_PAGES, default_floor // 2 // self._page_size)
            db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            db.execute(f"PRAGMA wal_autocheckpoint = {checkpoint_pages}")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                db.executescript(
                    f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                )
            elif version != SCHEMA_VERSION:
                raise StoreError(
                    f"the database {self.path} has schema version {version};"
                    f" this Mailslot knows {SCHEMA_VERSION}"
                )
            elif self.check_integrity:
                self._check_integrity(db)
            _settle_user_ids(db)
            self.database_id = _database_id(db)
            if self.free_space_floor is None:
                self.free_space_floor = default_floor
            self._reserve_bytes = checkpoint_pages * self._page_size
            self._keep_reserve()
        except BaseException:
            db.close()
            raise
        return db

    def _check_integrity(self, db: sqlite3.Connection) -> None:
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise StoreError(
                f"the database {self.path} is damaged ({problems[0]});"
                " restore it from a backup before starting the server"
            )

    # -- running a batch -------------------------------------------------------

    def _run_batch(self, db: sqlite3.Connection, batch: list[_Job]) -> None:
        outcomes: list[Outcome] = []
        if any(job.grows for job in batch):
            # What may grow: as many queue rows as there are pages above the floor,
            # since each row may dirty a page of its own (a broadcast's rows do).
            room = self._room_above_floor(db) // self._page_size
            admitted: list[_Job] = []
            for job in batch:
                if job.grows and job.rows > room:
                    outcomes.append((job.future, False, StorageFull(NEARLY_FULL)))
                    continue
                room -= job.rows if job.grows else 0
                admitted.append(job)
            batch = admitted
        if batch:
            outcomes += self._run_jobs(db, batch)
            self._written_since_look += sum(job.rows for job in batch) * self._page_size
        self._done.append(outcomes)
        if not self._handing_back:
            self._handing_back = True
            try:
                outcomes[0][0].get_loop().call_soon_threadsafe(self._resolve_done)
            except RuntimeError:  # the loop is closed: nobody is waiting
                self._handing_back = False
                self._done.clear()

    def _resolve_done(self) -> None:
        """On the loop: resolve every batch committed so far. The flag is cleared
        first, so a batch appended meanwhile is resolved now or by a call of its own."""
        self._handing_back = False
        while self._done:
            resolve(self._done.popleft())

    def _run_jobs(
        self, db: sqlite3.Connection, batch: list[_Job], *, disk_was_full: bool = False
    ) -> list[Outcome]:
        try:
            return self._transaction(db, batch, alone=False)
        except _JobFailed:
            return self._run_each_alone(db, batch)
        except _DiskFull as full:
            if disk_was_full:
                log.error("the disk is full: %d operations failed", len(batch))
                return [(job.future, False, full.failure) for job in batch]
            log.warning("the disk is full: refusing new messages, freeing space for the rest")
            # Give back the WAL's space and try again without what needs more: an ack
            # writes a little to the WAL, and must not fail for new mail's sake.
            self._release_reserve()
            self._truncate_wal(db)
            outcomes = [(job.future, False, full.failure) for job in batch if job.grows]
            rest = [job for job in batch if not job.grows]
            return outcomes + (self._run_jobs(db, rest, disk_was_full=True) if rest else [])

    def _run_each_alone(self, db: sqlite3.Connection, batch: list[_Job]) -> list[Outcome]:
        """The batch again, each job in a savepoint; a job whose failure spoils the
        whole transaction (damage) is taken out and the rest run once more."""
        spoiled: list[Outcome] = []
        while batch:
            try:
                return spoiled + self._transaction(db, batch, alone=True)
            except _JobFailed as failed:
                assert failed.job is not None and failed.outcome is not None
                spoiled.append(failed.outcome)
                batch = [job for job in batch if job is not failed.job]
            except _DiskFull as full:
                return spoiled + [(job.future, False, full.failure) for job in batch]
        return spoiled

    def _transaction(self, db: sqlite3.Connection, batch: list[_Job], alone: bool) -> list[Outcome]:
        """Run the batch in one transaction: every job in its own savepoint (`alone`),
        or all together, raising _JobFailed if one of them fails."""
        outcomes: list[Outcome] = []
        started = time.perf_counter()
        try:
            db.execute("BEGIN IMMEDIATE")
            if alone:
                outcomes = [self._run_alone(db, job) for job in batch]
            else:
                outcomes = self._run_together(db, batch)
            db.execute("COMMIT")
            self._committed_at = time.monotonic()
            self.commits += 1
            self.commit_stats.observe(time.perf_counter() - started, len(batch))
            return outcomes
        except _JobFailed:
            db.execute("ROLLBACK")
            self._message_ids.forget()
            raise
        except Exception as error:  # the thread must outlive any bad batch
            self._message_ids.forget()
            if db.in_transaction:
                db.execute("ROLLBACK")
            failure = _classify(error)
            if isinstance(failure, StorageFull):
                raise _DiskFull(failure) from error
            log.error("a commit of %d jobs failed: %s", len(batch), error)
            return [(job.future, False, failure) for job in batch]

    def _run_together(self, db: sqlite3.Connection, batch: list[_Job]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        sends: list[Enqueue] = []
        try:
            for job in batch:
                if isinstance(job, Enqueue):
                    sends.append(job)
                    continue
                if sends:
                    outcomes += _write_sends(db, self._message_ids, sends)
                    sends = []
                outcomes.append((job.future, True, job.run(db)))
            if sends:
                outcomes += _write_sends(db, self._message_ids, sends)
        except Exception as error:
            if _is_environmental(error):
                raise  # would fail job by job too
            raise _JobFailed() from error
        return outcomes

    def _run_alone(self, db: sqlite3.Connection, job: _Job) -> Outcome:
        db.execute("SAVEPOINT job")
        try:
            if isinstance(job, Enqueue):
                result = _write_sends(db, self._message_ids, [job])[0][2]
            else:
                result = job.run(db)
        except Exception as error:
            failure = _classify(error)
            level = logging.ERROR if isinstance(failure, StoreUnavailable) else logging.WARNING
            log.log(level, "a store operation failed alone: %s (%s)", failure, error)
            if _result_code(error) in _DAMAGE:
                raise _JobFailed(job, (job.future, False, failure)) from error
            db.execute("ROLLBACK TO job")
            db.execute("RELEASE job")
            self._message_ids.forget()
            return job.future, False, failure
        db.execute("RELEASE job")
        return job.future, True, result

    # -- headroom ----------------------------------------------------------------

    def _room_above_floor(self, db: sqlite3.Connection) -> int:
        """Free bytes above the floor, less what was written since the last look. A
        statvfs costs ~20 µs, as much as a lone send's SQL: look again only once that
        could have brought free space within twice the floor (so before every batch
        there: a few batches can fill a small disk), or after FREE_SPACE_LOOK_BYTES or
        FREE_SPACE_LOOK_INTERVAL."""
        assert self.free_space_floor is not None
        now = time.monotonic()
        if self._written_since_look < self._look_again_after and now < self._look_by:
            return self._free_at_look - self._written_since_look - self.free_space_floor
        free = self._free_bytes()
        near = free < 2 * self.free_space_floor
        if near and now - self._wal_truncated_at >= WAL_TRUNCATE_INTERVAL:
            self._truncate_wal(db)
            free = self._free_bytes()
        low = free < self.free_space_floor
        if not low and self._reserve_released:
            self._keep_reserve()
        if low != self._low_on_space:
            if low:
                log.warning(
                    "less than %d KiB free for %s: refusing new messages and users",
                    self.free_space_floor // 1024,
                    self.path,
                )
            else:
                log.warning("free space is back for %s: accepting new messages", self.path)
        self._low_on_space = low
        self._free_at_look = free
        self._written_since_look = 0
        self._look_again_after = min(FREE_SPACE_LOOK_BYTES, free - 2 * self.free_space_floor)
        self._look_by = now + FREE_SPACE_LOOK_INTERVAL
        return free - self.free_space_floor

    def _truncate_wal(self, db: sqlite3.Connection) -> None:
        """Copy the WAL into the database, which reuses the pages acks freed, and give
        the WAL's space back: it only shrinks when truncated."""
        self._wal_truncated_at = time.monotonic()
        self._look_again_after = 0  # free space changed
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:
            log.warning("could not truncate the WAL to free space: %s", error)

    def _keep_reserve(self) -> None:
        """Hold some disk space in a file of its own, for the day something else
        fills the disk: then a checkpoint (which may grow the database by what the
        WAL holds) and acks still fit. Only once the disk is filling up: a server
        with plenty of room (and a test suite) need not hold it."""
        assert self.free_space_floor is not None
        self._reserve_released = not self._reserve.exists()
        if not self._reserve_released:
            return
        free = self._free_bytes()
        if free >= RESERVE_WHEN_FREE_BELOW * self._reserve_bytes:
            return
        if free < 2 * self.free_space_floor + self._reserve_bytes:
            return
        fd = os.open(self._reserve, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, self._reserve_bytes)
            self._reserve_released = False
        except OSError as error:
            log.warning("could not set %s aside: %s", self._reserve, error)
            self._reserve.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def _release_reserve(self) -> None:
        if self._reserve_released:
            return
        self._reserve.unlink(missing_ok=True)
        self._reserve_released = True
        log.warning(
            "the disk holding %s is full: released the %d KiB set aside, for acks",
            self.path,
            self._reserve_bytes // 1024,
        )

    def _free_bytes(self) -> int:
        try:
            stat = os.statvfs(self.path)
        except OSError:
            return 0
        return stat.f_bavail * stat.f_frsize


class _MessageIds:
    """Message ids taken from the counter ID_BLOCK at a time, so that the counter's page
    is written once per block and not in every commit. A block is reserved in the
    transaction that first needs it; when a transaction or savepoint is rolled back,
    what is left of the block is given up: ids may skip, they never repeat."""

    def __init__(self) -> None:
        self._next = 1
        self._last = 0  # the last id reserved; nothing is until the first send

    def take(self, db: sqlite3.Connection, count: int) -> range:
        if self._last - self._next + 1 < count:
            size = max(ID_BLOCK, count)
            (last,) = db.execute(
                "UPDATE counters SET value = value + ? WHERE name = 'last_message_id'"
                " RETURNING value",
                (size,),
            ).fetchone()
            self._next, self._last = last - size + 1, last
        ids = range(self._next, self._next + count)
        self._next += count
        return ids

    def forget(self) -> None:
        """A rollback may have undone the reservation: reserve again before the next id."""
        self._last = self._next - 1


def _write_sends(
    db: sqlite3.Connection, message_ids: _MessageIds, sends: list[Enqueue]
) -> list[Outcome]:
    """Store consecutive sends with a few executemany calls; their message ids."""
    messages = [message for send in sends for message in send.messages]
    ids = message_ids.take(db, len(messages)) if messages else range(0)
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
    return send_outcomes(sends, ids)


# SQLite's primary result codes (the low byte of an extended code).
_UNAVAILABLE = {
    sqlite3.SQLITE_IOERR: "the server cannot read or write its database (I/O error)",
    sqlite3.SQLITE_READONLY: "the server's database has become read-only",
    sqlite3.SQLITE_CANTOPEN: "the server cannot open its database files",
    sqlite3.SQLITE_BUSY: "the server's database is locked by another process",
    sqlite3.SQLITE_LOCKED: "the server's database is locked",
    sqlite3.SQLITE_CORRUPT: "the server's database is damaged; the operator must restore it",
    sqlite3.SQLITE_NOTADB: "the server's database is damaged; the operator must restore it",
}


_ENVIRONMENTAL = {
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
}


NEARLY_FULL = (
    "the server's disk is nearly full; new messages and users are refused until space"
    " is freed (checks and acks still work)"
)
_DAMAGE = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def _result_code(error: BaseException) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _is_environmental(error: BaseException) -> bool:
    """The disk or the file, not the job: running the jobs one by one would not help.
    (Damage is not: it is in some pages, which other jobs may not touch.)"""
    code = _result_code(error)
    return code in _ENVIRONMENTAL


def _classify(error: Exception) -> StoreError:
    if isinstance(error, StoreError):
        return error
    code = _result_code(error)
    if code == sqlite3.SQLITE_FULL:
        return StorageFull("the server's disk is full")
    if code in _UNAVAILABLE:
        return StoreUnavailable(_UNAVAILABLE[code])
    return StoreError("the database refused this operation")


def _open_failure(path: Path, error: Exception) -> StoreError:
    """One sentence for the operator on why the database could not be opened."""
    if isinstance(error, StoreError):
        return error
    code = _result_code(error)
    if code in _DAMAGE:
        return StoreError(
            f"the database {path} is damaged or not a Mailslot database;"
            " restore it from a backup before starting the server"
        )
    if code == sqlite3.SQLITE_FULL or (isinstance(error, OSError) and error.errno == errno.ENOSPC):
        return StorageFull(f"the disk holding {path} is full")
    if isinstance(error, OSError):
        return StoreUnavailable(f"cannot open the database {path}: {error.strerror}")
    return StoreUnavailable(f"cannot open the database {path}: {error}")


def _database_id(db: sqlite3.Connection) -> int:
    """This database's id, made on first use (files from before it get one now)."""
    db.execute(
        "INSERT OR IGNORE INTO counters VALUES ('database_id', ?)", (secrets.randbits(62),)
    )
    (value,) = db.execute("SELECT value FROM counters WHERE name = 'database_id'").fetchone()
    return int(value)


def _settle_user_ids(db: sqlite3.Connection) -> None:
    """Start the user id counter (files from before it), and drop queue rows of deleted
    users: a send already on its way when its recipient was deleted lands after it."""
    db.execute("BEGIN IMMEDIATE")
    db.execute(
        "INSERT OR IGNORE INTO counters"
        " VALUES ('last_user_id', (SELECT coalesce(max(id), 0) FROM users))"
    )
    db.execute("CREATE TABLE IF NOT EXISTS deleted_users (id INTEGER PRIMARY KEY)")
    orphans = db.execute("DELETE FROM deleted_users RETURNING id").fetchall()
    for (user_id,) in orphans:
        _purge_queue(db, user_id)
    db.execute("COMMIT")
    if orphans:
        log.info("removed the mail of %d deleted users", len(orphans))


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
