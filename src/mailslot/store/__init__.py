"""Persistent state: the username log, credentials and per-user queues."""

from mailslot.store.base import (
    Batch,
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


__all__ = [
    "Batch",
    "NewMessage",
    "SQLiteStore",
    "StorageFull",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredMessage",
    "UserRecord",
    "is_postgres_url",
]
