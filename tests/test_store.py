"""The SQLite store on a real file: persistence, text stored once, group commit."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from mailslot.store import NewMessage, SQLiteStore
from mailslot.store.sqlite import StoreError
from tests.conftest import run


async def send_one(store: SQLiteStore, sender: str, to: list[int], text: str, at: int) -> int:
    (message_id,) = await store.enqueue([NewMessage(sender, to, text, at)])
    return message_id


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_users_and_queues_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"

    async def first() -> None:
        store = SQLiteStore(path)
        await store.open()
        alice = await store.create_user("alice", "Alice", None, 1)
        bob = await store.create_user("bob", "bob", "scrypt$x", 2)
        await store.create_user("carol", "carol", None, 3)
        await send_one(store, "Alice", [bob.id], "hello", 10)
        await send_one(store, "bob", [alice.id], "hi", 11)
        await store.close()

    async def second() -> None:
        store = SQLiteStore(path)
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
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.sqlite3"

    async def scenario() -> None:
        store = SQLiteStore(path)
        await store.open()
        ids = [(await store.create_user(f"u{i}", f"u{i}", None, i)).id for i in range(50)]
        await store.ack(ids[1], [await send_one(store, "u0", [ids[1]], "just one", 4)])
        assert _count(path, "messages") == 0  # one recipient: the queue row holds it all
        message_id = await send_one(store, "u0", ids[1:], "to all", 5)
        assert _count(path, "messages") == 1
        assert _count(path, "queue") == 49
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT count(*) FROM queue WHERE text IS NOT NULL").fetchone() == (
                0,
            )
        for user_id in ids[1:-1]:
            assert await store.ack(user_id, [message_id]) == 1
        assert await store.ack(ids[1], [message_id]) == 0  # twice is harmless
        assert _count(path, "messages") == 1
        assert await store.ack(ids[-1], [message_id]) == 1
        assert _count(path, "messages") == 0
        assert _count(path, "queue") == 0
        await store.close()

    run(scenario())


def test_fetch_pages_with_after_and_reports_more(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "m.sqlite3")
        await store.open()
        bob = await store.create_user("bob", "bob", None, 0)
        sent = [await send_one(store, "a", [bob.id], f"m{i}", i) for i in range(5)]
        first = await store.fetch(bob.id, 3)
        assert [m.id for m in first.messages] == sent[:3] and first.more
        rest = await store.fetch(bob.id, 3, after=sent[2])
        assert [m.id for m in rest.messages] == sent[3:] and not rest.more
        await store.close()

    run(scenario())


def test_concurrent_sends_share_commits(tmp_path: Path) -> None:
    """Many enqueues handed over at once complete in far fewer commits than messages."""
    path = tmp_path / "m.sqlite3"

    async def scenario() -> None:
        store = SQLiteStore(path)
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
    assert _count(path, "queue") == 500


def test_a_failing_job_does_not_spoil_the_batch(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "m.sqlite3")
        await store.open()
        await store.create_user("bob", "bob", None, 0)
        outcomes = await asyncio.gather(
            store.create_user("bob", "bob", None, 1),  # duplicate key
            store.create_user("carol", "carol", None, 2),
            return_exceptions=True,
        )
        assert isinstance(outcomes[0], StoreError)
        assert [u.key for u in await store.load_users()] == ["bob", "carol"]
        await store.close()

    run(scenario())


def test_a_data_file_from_the_future_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")

    async def scenario() -> None:
        with pytest.raises(StoreError, match="schema version 99"):
            await SQLiteStore(path).open()

    run(scenario())


def test_message_ids_are_never_reused(tmp_path: Path) -> None:
    """Clients de-duplicate by id, so a deleted message's id must never come back."""
    path = tmp_path / "m.sqlite3"

    async def send_and_ack(expect_above: int) -> int:
        store = SQLiteStore(path)
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
