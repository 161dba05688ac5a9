"""The client's local archive of received messages (B5), one SQLite file per server and user.

Messages are written here before they are acknowledged to the server, so a message
is always either still queued on the server or safely on the local disk (B1).
Redelivered messages are de-duplicated by their server-wide id.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from mailslot.gui.settings import data_dir


class MessageLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def sender(self) -> str: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def text(self) -> str: ...


@dataclass(frozen=True)
class ArchivedMessage:
    id: int
    sender: str
    received_at: datetime
    text: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY,
    sender      TEXT NOT NULL,
    received_at TEXT NOT NULL,
    text        TEXT NOT NULL,
    archived_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_received ON messages(received_at);
"""


def _safe(part: str) -> str:
    part = unicodedata.normalize("NFKC", part).strip().casefold()
    return re.sub(r"[^\w.\-]", "_", part) or "_"


def archive_path(server: str, user: str, base: Path | None = None) -> Path:
    """``<data dir>/archive/<server>_<user>.sqlite3`` with both parts made file-name safe."""
    root = (base or data_dir()) / "archive"
    return root / f"{_safe(server)}_{_safe(user)}.sqlite3"


class Archive:
    """Thread-safe; meant to be used from worker threads, never the Tk thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def add(self, messages: Iterable[MessageLike]) -> list[int]:
        """Store messages durably; return the ids that were new to the archive."""
        now = datetime.now(UTC).isoformat()
        new: list[int] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for m in messages:
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO messages(id, sender, received_at, text, archived_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (m.id, m.sender, _to_utc(m.received_at).isoformat(), m.text, now),
                    )
                    if cur.rowcount:
                        new.append(m.id)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return new

    def load(self, limit: int | None = None) -> list[ArchivedMessage]:
        """The archived messages, newest first."""
        sql = (
            "SELECT id, sender, received_at, text FROM messages ORDER BY received_at DESC, id DESC"
        )
        params: tuple[int, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [
            ArchivedMessage(int(i), str(s), datetime.fromisoformat(str(at)), str(t))
            for i, s, at, t in rows
        ]

    def count(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM messages").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _to_utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
