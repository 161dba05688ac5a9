"""The client's local archive (B5): the messages it received and the ones it sent, one
SQLite file per server and user, private to the user (directory 0700, files 0600).

Received messages are written here before they are acknowledged to the server, so a
message is always either still queued on the server or safely on the local disk (B1).
Redelivered messages are de-duplicated by their server-wide id.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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
    """A received message (``to`` empty) or a sent one (``sender`` is this user)."""

    id: int
    sender: str
    received_at: datetime
    text: str
    to: tuple[str, ...] = field(default=())
    everyone: bool = False

    @property
    def sent(self) -> bool:
        return bool(self.to) or self.everyone


_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY,
    sender      TEXT NOT NULL,
    received_at TEXT NOT NULL,
    text        TEXT NOT NULL,
    archived_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_received ON messages(received_at);
CREATE TABLE IF NOT EXISTS sent (
    id          INTEGER PRIMARY KEY,
    sender      TEXT NOT NULL,
    sent_at     TEXT NOT NULL,
    recipients  TEXT NOT NULL,
    everyone    INTEGER NOT NULL,
    text        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_at ON sent(sent_at);
"""

_RECEIVED = (
    "SELECT id, sender, received_at AS at, text, '[]' AS recipients, 0 AS everyone FROM messages"
)
_SENT = "SELECT id, sender, sent_at AS at, text, recipients, everyone FROM sent"


def _safe(part: str) -> str:
    part = unicodedata.normalize("NFKC", part).strip().casefold()
    return re.sub(r"[^\w.\-]", "_", part) or "_"


def archive_path(server: str, user: str, base: Path | None = None) -> Path:
    """``<data dir>/archive/<server>_<user>.sqlite3`` with both parts made file-name safe."""
    root = (base or data_dir()) / "archive"
    return root / f"{_safe(server)}_{_safe(user)}.sqlite3"


def _private_file(path: Path) -> None:
    """Create ``path`` readable by its owner only, whatever the umask; SQLite gives its
    -wal and -shm files the database file's permissions."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    path.chmod(0o600)


class Archive:
    """Thread-safe; meant to be used from worker threads, never the Tk thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        _private_file(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.create_function("fold", 1, str.casefold, deterministic=True)
        self._db.executescript(_SCHEMA)

    def add(self, messages: Iterable[MessageLike]) -> list[int]:
        """Store received messages durably; return the ids that were new to the archive."""
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

    def add_sent(self, message: ArchivedMessage) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO sent(id, sender, sent_at, recipients, everyone, text)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    message.id,
                    message.sender,
                    _to_utc(message.received_at).isoformat(),
                    json.dumps(list(message.to), ensure_ascii=False),
                    int(message.everyone),
                    message.text,
                ),
            )

    def load(self, limit: int | None = None) -> list[ArchivedMessage]:
        """The received messages, newest first."""
        return self._select(_RECEIVED, "", (), limit)

    def load_sent(self, limit: int | None = None) -> list[ArchivedMessage]:
        """The sent messages, newest first."""
        return self._select(_SENT, "", (), limit)

    def search(self, words: str, limit: int | None = None) -> list[ArchivedMessage]:
        """Received and sent messages whose text, sender or recipients contain every word
        of ``words`` (case-insensitive), newest first."""
        terms = [term.casefold() for term in words.split()]
        where = " AND ".join(
            "instr(fold(text || ' ' || sender || ' ' || recipients), ?)" for _ in terms
        )
        return self._select(
            f"{_RECEIVED} UNION ALL {_SENT}", f" WHERE {where}" if terms else "", terms, limit
        )

    def _select(
        self, source: str, where: str, params: Sequence[object], limit: int | None
    ) -> list[ArchivedMessage]:
        sql = f"SELECT * FROM ({source})"
        sql += where + " ORDER BY at DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [
            ArchivedMessage(
                int(i),
                str(s),
                datetime.fromisoformat(str(at)),
                str(t),
                tuple(json.loads(str(to))),
                bool(everyone),
            )
            for i, s, at, t, to, everyone in rows
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
