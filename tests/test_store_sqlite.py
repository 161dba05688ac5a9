"""What only the SQLite store has: a file that can be damaged or come from the future."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from pathlib import Path

import pytest

from mailslot.store import NewMessage, SQLiteStore, StoreError, StoreUnavailable
from tests.conftest import run, tmpfs
from tests.test_store import SQLiteBackend


async def _make_store_with_mail(path: Path) -> None:
    store = SQLiteStore(path)
    await store.open()
    bob = await store.create_user("bob", "bob", None, 0)
    await store.enqueue([NewMessage("a", [bob.id], "x" * 900, i) for i in range(200)])
    await store.close()


def test_damage_found_after_start_is_unavailable_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Pages damaged behind the server's back: the user whose queue is hit gets
    StoreUnavailable with a sentence and the log an ERROR line; other users go on."""
    path = tmp_path / "m.sqlite3"

    run(_make_store_with_mail(path))
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
    with path.open("r+b") as data:  # a leaf of bob's queue, in the middle of the file
        data.seek(page_size * (pages // 2))
        data.write(b"\xff" * page_size)

    async def use() -> None:
        store = SQLiteStore(path, check_integrity=False)
        await store.open()
        (bob,) = await store.load_users()
        held = await SQLiteBackend(path).hold(store)
        damaged = store.fetch(bob.id, 200)
        carol = store.create_user("carol", "c", None, 1)
        await held.release()
        with pytest.raises(StoreUnavailable, match="damaged"):
            await damaged
        assert (await carol).key == "carol"
        await store.close()

    with caplog.at_level(logging.ERROR, logger="mailslot.store.sqlite"):
        run(use())
    assert any("damaged" in record.getMessage() for record in caplog.records)


def test_a_damaged_database_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    run(_make_store_with_mail(path))
    with path.open("r+b") as data:
        data.seek(4096 * 2)
        data.write(b"\x00\x13" * 2048)

    async def scenario() -> None:
        with pytest.raises(StoreError, match=f"the database {path} is damaged"):
            await SQLiteStore(path).open()

    run(scenario())


def test_a_data_file_from_the_future_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")

    async def scenario() -> None:
        with pytest.raises(StoreError, match="schema version 99"):
            await SQLiteStore(path).open()

    run(scenario())


def test_free_space_is_looked_at_by_bytes_written_not_per_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """statvfs costs as much as a lone send's SQL: far from the floor it is looked at
    again only after several MiB (or a second), not before every commit."""
    looks: list[str] = []
    statvfs = os.statvfs

    def counted(path: str | os.PathLike[str]) -> os.statvfs_result:
        looks.append(os.fspath(path))
        return statvfs(path)

    with tmpfs(tmp_path / "disk", f"size={64 * 1024 * 1024},mode=0700") as disk:

        async def scenario() -> None:
            store = SQLiteStore(disk / "m.sqlite3")
            await store.open()
            bob = await store.create_user("bob", "bob", None, 0)
            monkeypatch.setattr(os, "statvfs", counted)
            started = time.monotonic()
            for number in range(200):
                await store.enqueue([NewMessage("alice", [bob.id], f"{number}", number)])
            seconds = time.monotonic() - started
            commits = store.commits
            await store.close()
            assert commits >= 200
            assert len(looks) <= 2 + seconds  # the first, and one a second

        run(scenario())


def test_one_user_sending_one_after_another_never_waits_for_company(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "m.sqlite3")
        await store.open()
        bob = await store.create_user("bob", "bob", None, 0)
        commits = store.commits
        for number in range(100):
            await store.enqueue([NewMessage("alice", [bob.id], f"{number}", number)])
        assert store.commits - commits == 100
        assert store.delayed_commits == 0
        await store.close()

    run(scenario())


def test_lone_sends_of_several_busy_users_share_commits(tmp_path: Path) -> None:
    """Four users each sending one message after another, as four interactive clients
    under load: small batches wait COMMIT_DELAY for company (the commit delay); every
    send still gets its own id, in each sender's order."""

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "m.sqlite3")
        await store.open()
        bob = await store.create_user("bob", "bob", None, 0)

        async def sender(name: str) -> list[int]:
            ids: list[int] = []
            for number in range(100):
                ids += await store.enqueue([NewMessage(name, [bob.id], f"{number}", number)])
            return ids

        sent = await asyncio.gather(*(sender(f"s{n}") for n in range(4)))
        assert all(ids == sorted(ids) for ids in sent)
        assert len({i for ids in sent for i in ids}) == 400
        assert store.delayed_commits > 0  # 0 with COMMIT_DELAY = 0
        batch = await store.fetch(bob.id, 1000)
        assert len(batch.messages) == 400
        await store.close()

    run(scenario())


def test_message_ids_never_repeat_after_a_rolled_back_batch_and_a_restart(
    tmp_path: Path,
) -> None:
    """Ids are reserved a block at a time. A batch that reserved a block and was rolled
    back (a job in it failed) gives the block up: after a restart, a new message's id is
    still above every id handed out before."""
    path = tmp_path / "m.sqlite3"

    async def scenario() -> list[int]:
        store = SQLiteStore(path)
        await store.open()
        bob = await store.create_user("bob", "bob", None, 0)
        held = await SQLiteBackend(path).hold(store)
        sent = store.enqueue([NewMessage("a", [bob.id], "first", 1)])
        failing = store.fetch(bob.id, 10, after=2**63)  # overflows: the batch rolls back
        await held.release()
        ids = list(await sent)
        with pytest.raises(StoreError):
            await failing
        ids += await store.enqueue([NewMessage("a", [bob.id], "second", 2)])
        await store.close()
        return ids

    async def after_restart() -> int:
        store = SQLiteStore(path)
        await store.open()
        (message_id,) = await store.enqueue([NewMessage("a", [1], "third", 3)])
        await store.close()
        return message_id

    before = run(scenario())
    assert before == sorted(before)
    assert run(after_restart()) > max(before)


@pytest.mark.parametrize("count", [1, 7, 600])
def test_texts_come_back_exactly_from_sends_stored_together(tmp_path: Path, count: int) -> None:
    """Sends stored in one batch come back with their own ids, senders, times and
    texts, byte for byte (NUL included)."""
    kinds = ["héllo 🎉 \"q\" \\", "a\x00b", "tab\tnew\nline", "\u2028", "'; DROP TABLE queue;--"]

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "m.sqlite3")
        await store.open()
        bob = await store.create_user("bob", "bob", None, 0)
        texts = [f"{kinds[n % len(kinds)]} {n}" for n in range(count)]
        ids = await store.enqueue(
            [NewMessage(f"s{n % 3}", [bob.id], text, n) for n, text in enumerate(texts)]
        )
        batch = await store.fetch(bob.id, count)
        assert [(m.id, m.sender, m.received_at, m.text) for m in batch.messages] == [
            (i, f"s{n % 3}", n, text) for n, (i, text) in enumerate(zip(ids, texts, strict=True))
        ]
        await store.close()

    run(scenario())
