"""Persistent state: the username log, credentials and per-user queues."""

import re

from mailslot.store.base import (
    Batch,
    NameTaken,
    NewMessage,
    StorageFull,
    Store,
    StoredMessage,
    StoreError,
    StoreUnavailable,
    UserRecord,
)
from mailslot.store.sqlite import SQLiteStore


def is_postgres_url(location: str) -> bool:
    """Whether a database location is a PostgreSQL URL (the PostgresStore in
    mailslot.store.postgres, which needs asyncpg) rather than an SQLite file."""
    return location.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """A database URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


__all__ = [
    "Batch",
    "NameTaken",
    "NewMessage",
    "SQLiteStore",
    "StorageFull",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredMessage",
    "UserRecord",
    "is_postgres_url",
    "redact",
]
