"""Persistent state: the username log, credentials and per-user queues."""

from mailslot.store.base import Batch, NewMessage, Store, StoredMessage, UserRecord
from mailslot.store.sqlite import SQLiteStore

__all__ = ["Batch", "NewMessage", "SQLiteStore", "Store", "StoredMessage", "UserRecord"]
