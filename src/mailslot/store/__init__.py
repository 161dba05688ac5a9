"""Persistent state: the username log, credentials and per-user queues."""

from mailslot.store.base import Batch, Store, StoredMessage, UserRecord
from mailslot.store.sqlite import SQLiteStore

__all__ = ["Batch", "SQLiteStore", "Store", "StoredMessage", "UserRecord"]
