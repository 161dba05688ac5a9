"""The store on a real, tiny file system: a full disk refuses new mail, never acks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailslot.store import NewMessage, SQLiteStore, StorageFull
from mailslot.store.sqlite import default_free_space_floor
from tests.conftest import run, tmpfs

DISK_BYTES = 2 * 1024 * 1024
BALLAST_BYTES = 512 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test (needs root, as in CI)."""
    with tmpfs(tmp_path / "disk", f"size={DISK_BYTES},mode=0700") as disk:
        yield disk


def test_the_floor_is_a_slice_of_the_disk_within_bounds() -> None:
    assert default_free_space_floor(DISK_BYTES) == 256 * 1024
    assert default_free_space_floor(100 * 1024 * 1024) == 5 * 1024 * 1024
    assert default_free_space_floor(10 * 1024**4) == 128 * 1024 * 1024


def test_a_full_disk_refuses_sends_but_checks_and_acks_work_and_sends_come_back(
    small_disk: Path,
) -> None:
    path = small_disk / "mailslot.sqlite3"
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * BALLAST_BYTES)

    async def scenario() -> None:
        store = SQLiteStore(path)
        await store.open()
        bob = await store.create_user("bob", "bob", None, 0)
        stored: list[int] = []
        with pytest.raises(StorageFull) as refused:
            for batch in range(10_000):
                messages = [NewMessage("alice", [bob.id], f"{batch}:" + "x" * 900, 1)] * 10
                stored += await store.enqueue(messages)
        assert "disk" in str(refused.value)
        assert stored  # some got in before the disk filled
        with pytest.raises(StorageFull):  # one at a time, up to the floor
            for number in range(10_000):
                stored += await store.enqueue([NewMessage("alice", [bob.id], f"{number}", 1)])
        with pytest.raises(StorageFull):
            await store.create_user("carol", "carol", None, 2)

        fetched: list[int] = []
        after = 0
        while True:
            batch = await store.fetch(bob.id, 200, after)
            fetched += [message.id for message in batch.messages]
            if not batch.more:
                break
            after = batch.messages[-1].id
        assert fetched == stored  # nothing acknowledged was lost
        for start in range(0, len(fetched), 200):
            chunk = fetched[start : start + 200]
            assert await store.ack(bob.id, chunk) == len(chunk)
        assert (await store.fetch(bob.id, 10)).messages == []

        ballast.unlink()
        for _ in range(100):  # the store looks at the free space at most every 0.5 s
            try:
                (again,) = await store.enqueue([NewMessage("alice", [bob.id], "back", 3)])
                break
            except StorageFull:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("sends were still refused 10 s after space was freed")
        assert again > stored[-1]
        assert (await store.create_user("carol", "carol", None, 2)).key == "carol"
        await store.close()

        reopened = SQLiteStore(path)
        await reopened.open()
        assert [m.text for m in (await reopened.fetch(bob.id, 10)).messages] == ["back"]
        await reopened.close()

    run(scenario())


def test_acks_work_when_something_else_fills_the_disk(small_disk: Path) -> None:
    """Another program takes the last byte: the store gives up its reserve so that
    acks (and the checkpoint they need) still fit, and takes it back once space returns."""
    path = small_disk / "mailslot.sqlite3"
    reserve = path.with_name(path.name + "-reserve")
    filler = small_disk / "filler"

    async def scenario() -> None:
        store = SQLiteStore(path)
        await store.open()
        assert reserve.stat().st_size > 0
        bob = await store.create_user("bob", "bob", None, 0)
        stored: list[int] = []
        for batch in range(40):
            messages = [NewMessage("alice", [bob.id], f"{batch}:" + "x" * 900, 1)] * 10
            stored += await store.enqueue(messages)
        with sqlite3.connect(path) as other:  # an empty WAL: an ack must grow it
            other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with filler.open("wb") as file, contextlib.suppress(OSError):
            while True:
                file.write(b"\0" * 65536)
                file.flush()
        assert os.statvfs(small_disk).f_bavail == 0
        fetched = [m.id for m in (await store.fetch(bob.id, 200)).messages]
        fetched += [m.id for m in (await store.fetch(bob.id, 200, fetched[-1])).messages]
        assert fetched == stored
        for start in range(0, len(fetched), 20):  # a 128 KiB reserve: 32 pages per ack
            chunk = fetched[start : start + 20]
            assert await store.ack(bob.id, chunk) == len(chunk)
        with pytest.raises(StorageFull):
            await store.enqueue([NewMessage("alice", [bob.id], "no room", 2)])
        filler.unlink()
        for _ in range(100):
            try:
                await store.enqueue([NewMessage("alice", [bob.id], "room again", 3)])
                break
            except StorageFull:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("sends were still refused 10 s after space was freed")
        assert reserve.stat().st_size > 0
        await store.close()

    run(scenario())
