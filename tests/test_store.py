"""The store contract, held by every store: the SQLite store on a real file and the
PostgreSQL store on the local PostgreSQL (a schema of its own per test)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from mailslot.store import (
    Batch,
    NameTaken,
    NewMessage,
    SQLiteStore,
    StorageFull,
    StoreError,
    StoreUnavailable,
    UserRecord,
)
from mailslot.store.batching import ROWS_PER_COMMIT
from tests.conftest import run

if TYPE_CHECKING:  # asyncpg is an optional dependency: imported where needed
    from mailslot.store.postgres import PostgresStore

AnyStore = Any  # SQLiteStore | PostgresStore: both have commits and _call


class Held(Protocol):
    async def release(self) -> None: ...


class Backend(Protocol):
    def store(self) -> AnyStore:
        """A new store on this backend's data (a reopening, after the first)."""

    async def scalar(self, sql: str) -> int:
        """The one integer a query over the store's tables returns."""

    async def count(self, table: str) -> int: ...

    async def hold(self, store: AnyStore) -> Held:
        """Keep the store's writer busy until release(), so that every job submitted
        meanwhile is waiting when it looks for work: they go in one batch."""


class HeldSQLite:
    def __init__(self, store: SQLiteStore) -> None:
        self.gate = threading.Event()
        self.running = threading.Event()
        self.busy = store._call(self._hold)

    def _hold(self, db: sqlite3.Connection) -> None:
        self.running.set()
        self.gate.wait(30)

    async def release(self) -> None:
        await asyncio.sleep(0)  # tasks started meanwhile hand over their jobs first
        self.gate.set()
        await self.busy


class SQLiteBackend:
    def __init__(self, path: Path) -> None:
        self.path = path

    def store(self) -> SQLiteStore:
        return SQLiteStore(self.path)

    async def scalar(self, sql: str) -> int:
        with sqlite3.connect(self.path) as db:
            return int(db.execute(sql).fetchone()[0])

    async def count(self, table: str) -> int:
        return await self.scalar(f"SELECT count(*) FROM {table}")

    async def hold(self, store: SQLiteStore) -> HeldSQLite:
        held = HeldSQLite(store)
        await asyncio.get_running_loop().run_in_executor(None, held.running.wait, 30)
        return held


class HeldPostgres:
    def __init__(self, store: PostgresStore) -> None:
        self.gate = asyncio.Event()
        self.running = asyncio.Event()
        self.busy = store._call(self._hold)

    async def _hold(self, db: object) -> None:
        self.running.set()
        await asyncio.wait_for(self.gate.wait(), 30)

    async def release(self) -> None:
        await asyncio.sleep(0)  # tasks started meanwhile hand over their jobs first
        self.gate.set()
        await self.busy


class PostgresBackend:
    def __init__(self, url: str) -> None:
        self.url = url

    def store(self) -> PostgresStore:
        from mailslot.store.postgres import PostgresStore

        return PostgresStore(self.url)

    async def scalar(self, sql: str) -> int:
        import asyncpg

        connection = await asyncpg.connect(self.url)
        try:
            return int(await connection.fetchval(sql))
        finally:
            await connection.close()

    async def count(self, table: str) -> int:
        return await self.scalar(f"SELECT count(*) FROM {table}")

    async def hold(self, store: PostgresStore) -> HeldPostgres:
        held = HeldPostgres(store)
        await asyncio.wait_for(held.running.wait(), 30)
        return held


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield SQLiteBackend(tmp_path / "m.sqlite3")
    else:
        yield PostgresBackend(request.getfixturevalue("postgres_url"))


async def send_one(store: AnyStore, sender: str, to: list[int], text: str, at: int) -> int:
    (message_id,) = await store.enqueue([NewMessage(sender, to, text, at)])
    return message_id


def test_users_and_queues_survive_reopening(backend: Backend) -> None:

    async def first() -> None:
        store = backend.store()
        await store.open()
        alice = await store.create_user("alice", "Alice", None, 1)
        bob = await store.create_user("bob", "bob", "scrypt$x", 2)
        await store.create_user("carol", "carol", None, 3)
        await send_one(store, "Alice", [bob.id], "hello", 10)
        await send_one(store, "bob", [alice.id], "hi", 11)
        await store.close()

    async def second() -> None:
        store = backend.store()
        await store.open()
        users = await store.load_users()
        assert [(u.key, u.name, u.password_hash) for u in users] == [
            ("alice", "Alice", None),
            ("bob", "bob", "scrypt$x"),
            ("carol", "carol", None),  # an empty queue is still a queue
        ]
        assert await store.waiting_counts() == {users[0].id: 1, users[1].id: 1}
        batch = await store.fetch(users[1].id, 10)
        assert [(m.sender, m.text, m.received_at) for m in batch.messages] == [
            ("Alice", "hello", 10)
        ]
        await store.close()

    run(first())
    run(second())


def test_a_broadcast_stores_its_text_once_and_deletes_it_after_the_last_ack(
    backend: Backend,
) -> None:

    async def scenario() -> None:
        store = backend.store()
        await store.open()
        ids = [(await store.create_user(f"u{i}", f"u{i}", None, i)).id for i in range(50)]
        await store.ack(ids[1], [await send_one(store, "u0", [ids[1]], "just one", 4)])
        assert await backend.count("messages") == 0  # one recipient: the queue row holds it all
        message_id = await send_one(store, "u0", ids[1:], "to all", 5)
        assert await backend.count("messages") == 1
        assert await backend.count("queue") == 49
        assert await backend.scalar("SELECT count(*) FROM queue WHERE text IS NOT NULL") == 0
        for user_id in ids[1:-1]:
            assert await store.ack(user_id, [message_id]) == 1
        assert await store.ack(ids[1], [message_id]) == 0  # twice is harmless
        assert await backend.count("messages") == 1
        assert await store.ack(ids[-1], [message_id]) == 1
        assert await backend.count("messages") == 0
        assert await backend.count("queue") == 0
        await store.close()

    run(scenario())


def test_checks_and_acks_of_many_users_in_one_commit_each_get_their_own(
    backend: Backend,
) -> None:
    """Checks and acks of many users handed over together (one commit): each check sees
    its own queue, each ack counts what it deleted (an id acked twice counts once), and
    a broadcast's text goes when the last of its recipients acks, in the same batch."""

    async def scenario() -> None:
        store = backend.store()
        await store.open()
        users = [(await store.create_user(f"u{i}", f"u{i}", None, i)).id for i in range(20)]
        broadcast = await send_one(store, "u0", users, "to all", 1)
        own = {
            user_id: await store.enqueue(
                [NewMessage("u0", [user_id], f"for {user_id}: {n}", 2) for n in range(3)]
            )
            for user_id in users
        }
        commits = store.commits
        held = await backend.hold(store)
        checks = [store.fetch(user_id, 2, after=broadcast) for user_id in users]
        acks = [store.ack(user_id, [broadcast, own[user_id][0]]) for user_id in users]
        again = store.ack(users[0], [broadcast, own[users[0]][1]])
        await held.release()
        for user_id, check in zip(users, checks, strict=True):
            batch = await check
            assert [m.id for m in batch.messages] == own[user_id][:2] and batch.more
            assert batch.messages[0].text == f"for {user_id}: 0"
        assert [await ack for ack in acks] == [2] * len(users)
        assert await again == 1
        assert store.commits == commits + 2  # the held job's, then one for all
        assert await backend.count("messages") == 0
        assert await backend.count("queue") == len(users) * 3 - len(users) - 1
        await store.close()

    run(scenario())


def test_fetch_pages_with_after_and_reports_more(backend: Backend) -> None:
    async def scenario() -> None:
        store = backend.store()
        await store.open()
        bob = await store.create_user("bob", "bob", None, 0)
        sent = [await send_one(store, "a", [bob.id], f"m{i}", i) for i in range(5)]
        first = await store.fetch(bob.id, 3)
        assert [m.id for m in first.messages] == sent[:3] and first.more
        rest = await store.fetch(bob.id, 3, after=sent[2])
        assert [m.id for m in rest.messages] == sent[3:] and not rest.more
        await store.close()

    run(scenario())


def test_concurrent_sends_share_commits(backend: Backend) -> None:
    """Many enqueues handed over at once complete in far fewer commits than messages."""

    async def scenario() -> None:
        store = backend.store()
        await store.open()
        bob = await store.create_user("bob", "bob", None, 0)
        before = store.commits
        results = await asyncio.gather(
            *(send_one(store, "a", [bob.id], f"m{i}", i) for i in range(500))
        )
        assert len(set(results)) == 500
        assert store.commits - before < 50
        await store.close()

    run(scenario())
    assert run(backend.count("queue")) == 500


def test_a_failing_job_fails_alone_in_a_shared_commit(backend: Backend) -> None:
    """A check with an id past SQLite's integers, a duplicate user and good jobs, all in
    one batch: the bad ones fail, the others commit."""

    async def scenario() -> None:
        store = backend.store()
        await store.open()
        bob = await store.create_user("bob", "bob", None, 0)
        commits = store.commits
        held = await backend.hold(store)
        outcomes = asyncio.gather(
            store.fetch(bob.id, 10, after=2**63),  # overflows SQLite's INTEGER
            store.create_user("bob", "bob", None, 1),  # duplicate key
            store.create_user("carol", "carol", None, 2),
            store.enqueue([NewMessage("carol", [bob.id], "hello", 3)]),
            store.fetch(bob.id, 10),
            return_exceptions=True,
        )
        await held.release()
        overflow, duplicate, carol, sent, fetched = await outcomes
        assert store.commits == commits + 2  # the held job's, then one for the five
        assert isinstance(overflow, StoreError) and isinstance(duplicate, NameTaken)
        assert not isinstance(overflow, StorageFull | StoreUnavailable)
        assert isinstance(carol, UserRecord) and carol.key == "carol"
        assert isinstance(sent, list) and isinstance(fetched, Batch)
        assert [m.id for m in fetched.messages] == sent
        await store.close()

    run(scenario())
    assert run(backend.count("users")) == 2
    assert run(backend.count("queue")) == 1


def test_a_burst_of_broadcasts_does_not_hold_up_another_user(backend: Backend) -> None:
    """One user's 20 broadcasts to 1,000 users (20,000 queue rows) are handed over
    before another user's single send; that send still completes before most of them."""

    async def scenario() -> None:
        store = backend.store()
        await store.open()
        users = await asyncio.gather(
            *(store.create_user(f"u{i}", f"u{i}", None, i) for i in range(1_000))
        )
        everyone = [user.id for user in users]
        finished: list[str] = []

        def note(name: str, future: asyncio.Future[list[int]]) -> None:
            future.add_done_callback(lambda _: finished.append(name))

        held = await backend.hold(store)
        burst = [store.enqueue([NewMessage("u0", everyone, "to all", 1)]) for _ in range(20)]
        for number, future in enumerate(burst):
            note(f"burst {number}", future)
        bystander = store.enqueue([NewMessage("u1", [everyone[2]], "hi", 2)])
        note("bystander", bystander)
        await held.release()
        await asyncio.gather(bystander, *burst)
        assert finished.index("bystander") < finished.index("burst 5")
        # and the burst kept its order
        assert [name for name in finished if name != "bystander"] == [
            f"burst {number}" for number in range(20)
        ]
        await store.close()

    run(scenario())


def test_a_broadcast_too_big_for_one_commit_lets_small_jobs_go_first(backend: Backend) -> None:
    """Broadcasts with more queue rows than a commit holds each commit alone, and a
    small job handed over after them does not wait for them."""

    async def scenario() -> None:
        store = backend.store()
        await store.open()
        users = await asyncio.gather(
            *(store.create_user(f"u{i}", f"u{i}", None, i) for i in range(ROWS_PER_COMMIT + 10))
        )
        everyone = [user.id for user in users]
        finished: list[str] = []
        held = await backend.hold(store)
        commits = store.commits
        burst = [store.enqueue([NewMessage("u0", everyone, "to all", 1)]) for _ in range(3)]
        for number, future in enumerate(burst):
            future.add_done_callback(lambda _, number=number: finished.append(f"burst {number}"))
        bystander = store.enqueue([NewMessage("u1", [everyone[2]], "hi", 2)])
        bystander.add_done_callback(lambda _: finished.append("bystander"))
        await held.release()
        await asyncio.gather(bystander, *burst)
        assert finished == ["bystander", "burst 0", "burst 1", "burst 2"]
        assert store.commits == commits + 1 + 4  # the held job's, the bystander's, one each
        await store.close()

    run(scenario())


def test_a_users_own_operations_keep_their_order(backend: Backend) -> None:
    """A send to oneself, then a check, then an ack, handed over together behind
    another user's burst: each sees the one before, whatever the fair sharing does."""

    async def scenario() -> None:
        store = backend.store()
        await store.open()
        users = await asyncio.gather(
            *(store.create_user(f"u{i}", f"u{i}", None, i) for i in range(1_000))
        )
        alice = users[1]
        (earlier,) = await store.enqueue([NewMessage("u2", [alice.id], "earlier", 1)])
        held = await backend.hold(store)
        others = [user.id for user in users if user is not alice]
        burst = [store.enqueue([NewMessage("u0", others, "to all", 1)]) for _ in range(10)]
        sent = [
            store.enqueue([NewMessage(alice.name, [alice.id], f"note {number}", 2)])
            for number in range(5)
        ]
        before_ack = store.fetch(alice.id, 100)
        acked = store.ack(alice.id, [earlier])
        after_ack = store.fetch(alice.id, 100)
        await held.release()
        notes = {message_id for (message_id,) in await asyncio.gather(*sent)}
        assert {m.id for m in (await before_ack).messages} == notes | {earlier}
        assert await acked == 1
        assert {m.id for m in (await after_ack).messages} == notes
        await asyncio.gather(*burst)
        await store.close()

    run(scenario())


def test_many_small_sends_from_many_users_share_a_commit(backend: Backend) -> None:
    async def scenario() -> None:
        store = backend.store()
        await store.open()
        users = await asyncio.gather(
            *(store.create_user(f"u{i}", f"u{i}", None, i) for i in range(300))
        )
        commits = store.commits
        held = await backend.hold(store)
        sends = [store.enqueue([NewMessage(user.name, [users[0].id], "hi", 1)]) for user in users]
        await held.release()
        await asyncio.gather(*sends)
        assert store.commits == commits + 2
        await store.close()

    run(scenario())


def test_message_ids_are_never_reused(backend: Backend) -> None:
    """Clients de-duplicate by id, so a deleted message's id must never come back."""

    async def send_and_ack(expect_above: int) -> int:
        store = backend.store()
        await store.open()
        users = await store.load_users()
        bob = users[0] if users else await store.create_user("bob", "bob", None, 0)
        message_id = await send_one(store, "a", [bob.id], "x", 1)
        assert message_id > expect_above
        assert await store.ack(bob.id, [message_id]) == 1
        await store.close()
        return message_id

    first = run(send_and_ack(0))
    assert run(send_and_ack(first)) > first


def test_a_deleted_users_id_is_never_handed_out_again(backend: Backend) -> None:
    """Mail on its way to a user who is deleted meanwhile must never reach a newcomer."""

    async def scenario() -> None:
        store = backend.store()
        await store.open()
        alice = await store.create_user("alice", "alice", None, 0)
        bob = await store.create_user("bob", "bob", None, 0)
        await store.delete_user(bob.id)
        await send_one(store, "alice", [bob.id], "sent as bob was deleted", 1)  # lands late
        carol = await store.create_user("carol", "carol", None, 2)
        assert carol.id not in (alice.id, bob.id)
        assert (await store.fetch(carol.id, 10)).messages == []
        await store.close()
        reopened = backend.store()
        await reopened.open()  # the late mail of the deleted user is dropped at start
        assert bob.id not in await reopened.waiting_counts()
        assert await reopened.fetch(bob.id, 10) == Batch([], more=False)
        dave = await reopened.create_user("dave", "dave", None, 3)
        assert dave.id > carol.id
        await reopened.close()

    run(scenario())
