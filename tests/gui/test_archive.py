"""The client's local archive: private files, sent messages, search (B5)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailslot.gui.archive import Archive, ArchivedMessage, archive_path

START = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(params=[0o022, 0o000], ids=["umask 022", "umask 000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield int(request.param)
    os.umask(old)


def test_the_archive_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = archive_path("127.0.0.1:7777", "alice", tmp_path)
    archive = Archive(path)
    archive.add([ArchivedMessage(1, "bob", START, "a secret")])
    files = [path, *path.parent.glob(path.name + "-*")]
    assert len(files) == 3  # the database, its -wal and -shm files
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
    archive.close()


def test_an_existing_archive_is_made_private(tmp_path: Path) -> None:
    path = archive_path("127.0.0.1:7777", "alice", tmp_path)
    path.parent.mkdir(parents=True, mode=0o755)
    path.touch(mode=0o644)
    Archive(path).close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_sent_messages_are_kept_and_search_finds_both_kinds(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "a.sqlite3")
    archive.add(
        [
            ArchivedMessage(1, "bob", START, "Lunch at noon?"),
            ArchivedMessage(3, "Çelik", START + timedelta(minutes=2), "ÉTÉ plans"),
        ]
    )
    archive.add_sent(
        ArchivedMessage(2, "alice", START + timedelta(minutes=1), "Yes, lunch", ("bob", "carol"))
    )
    archive.add_sent(ArchivedMessage(4, "alice", START + timedelta(minutes=3), "hi", everyone=True))
    assert [m.id for m in archive.load()] == [3, 1]
    sent = archive.load_sent()
    assert [(m.id, m.to, m.everyone, m.sent) for m in sent] == [
        (4, (), True, True),
        (2, ("bob", "carol"), False, True),
    ]
    assert [m.id for m in archive.search("LUNCH")] == [2, 1]
    assert [m.id for m in archive.search("lunch carol")] == [2]
    assert [m.id for m in archive.search("été")] == [3]
    assert [m.id for m in archive.search("çelik")] == [3]
    assert archive.search("100%") == []
    assert [m.id for m in archive.search("", limit=2)] == [4, 3]
    archive.close()
