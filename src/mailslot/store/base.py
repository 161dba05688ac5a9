"""The storage interface the server depends on; every implementation keeps it."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    key: str  # NFKC + casefold: identity
    name: str  # spelling at first use: display
    password_hash: str | None
    created_at: int  # microseconds since the epoch, UTC


class StoredMessage(NamedTuple):  # a tuple: a check makes one per message (a dataclass: 0.8 µs)
    id: int
    sender: str
    received_at: int  # microseconds since the epoch, UTC
    text: str


class NewMessage(NamedTuple):  # a tuple: made once per send, on the hot path
    sender: str
    recipient_ids: Sequence[int]
    text: str
    at: int  # reception time, microseconds since the epoch, UTC


@dataclass(frozen=True, slots=True)
class Batch:
    messages: list[StoredMessage]
    more: bool


class StoreError(Exception):
    """The database refused an operation; the operation had no effect, and no other
    operation failed with it. str() is a sentence that may be shown to a user."""


class NameTaken(StoreError):
    """create_user lost a race: another node stored the same name key first."""


class StorageFull(StoreError):
    """The disk holding the data is full, or below the free-space floor the store
    keeps: new messages and new users are refused, while checks and acks (which free
    space) go on. It passes once space is freed; retrying later is right."""


class StoreUnavailable(StoreError):
    """The database cannot be read or written right now (I/O error, read-only file
    system, locked by another process, closed) or is damaged where this operation
    looked. It needs the operator; the store logs an ERROR line for it."""


class Store(Protocol):
    """Users, credentials and persistent per-user queues.

    The contract every implementation keeps (tests/test_store*.py check it):

    - Durable when the awaitable resolves: a write's result is returned only after
      the commit holding it reached the disk (fsync). Callers acknowledge to
      clients only then. Concurrent writes may share one commit.
    - A failing operation has no effect and fails alone: it raises a StoreError
      (StorageFull and StoreUnavailable say why), and the operations that shared
      its commit are not affected.
    - Message ids increase in the order messages are stored and are never reused,
      not even after their messages were acknowledged and deleted, nor across
      restarts: clients de-duplicate by id. Several stores on one database (the
      nodes of a cluster) never hand out the same id; each one's ids increase in
      its own order of storing.
    - Names are unique by key: create_user raises NameTaken when another store on
      the same database stored the key first.
    - One user's operations (its sends, checks and acks) take effect in the order
      they were handed over; operations of different users may be reordered for
      fairness, so that one user's burst does not hold up the others.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def load_users(self) -> list[UserRecord]: ...

    async def waiting_counts(self) -> dict[int, int]:
        """Messages waiting per user id, for users with any."""
        ...

    async def create_user(
        self, key: str, name: str, password_hash: str | None, at: int
    ) -> UserRecord: ...

    # The hot-path operations return awaitables rather than being coroutines, so
    # a connection can hand many pipelined requests to the store before awaiting
    # any, and they share one commit.

    async def set_password(self, user_id: int, password_hash: str) -> None:
        """Protect a name that was first used without a password."""
        ...

    def enqueue(self, messages: Sequence[NewMessage]) -> asyncio.Future[list[int]]:
        """Store each text once and queue it for its recipients; the ids, in order.
        A future, so that the server can act on the commit (push "new mail") before
        the sender's reply is written."""
        ...

    def fetch(self, user_id: int, limit: int, after: int = 0) -> Awaitable[Batch]:
        """The oldest `limit` messages in the user's queue with ids above `after`."""
        ...

    def ack(self, user_id: int, message_ids: Sequence[int]) -> Awaitable[int]:
        """Delete these messages from the user's queue; how many were there."""
        ...

    # For `mailslot admin`.

    async def delete_user(self, user_id: int) -> int:
        """Delete a user and its queue; how many messages were waiting for it."""
        ...

    async def purge(self, user_id: int) -> int:
        """Empty a user's queue; how many messages were in it."""
        ...

    async def check_writable(self) -> None:
        """Raise StoreError unless the store can commit a write right now."""
        ...

    async def backup(self, target: Path) -> None:
        """A consistent copy of the whole store in a new SQLite file at `target`; a
        StoreError saying what to use instead where the database is backed up with its
        own tools (PostgreSQL: pg_dump)."""
        ...


class Histogram:
    """Counts per bucket, kept as plain ints so that observing costs a bisect and an
    increment (the database thread observes every commit); read at scrape time."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = list(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or below it) per bucket, ending with +Inf."""
        buckets = []
        running = 0
        for bound, count in zip([*self.bounds, float("inf")], self.counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return buckets


class CommitStats:
    """What each commit cost: its latency (seconds) and how many jobs it carried."""

    def __init__(self) -> None:
        self.latency = Histogram(
            [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]
        )
        self.jobs = Histogram([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000])

    def observe(self, seconds: float, jobs: int) -> None:
        self.latency.observe(seconds)
        self.jobs.observe(jobs)
