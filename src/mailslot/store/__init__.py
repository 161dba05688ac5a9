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
]
