"""The store on a real, tiny file system: a full disk refuses new mail, never acks."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailslot.store import NewMessage, SQLiteStore, StorageFull
from mailslot.store.sqlite import default_free_space_floor
from tests.conftest import run

DISK_BYTES = 2 * 1024 * 1024
BALLAST_BYTES = 512 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test (needs root, as in CI)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs here: {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI needs root for this test)")
        pytest.skip(reason)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=True)


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
