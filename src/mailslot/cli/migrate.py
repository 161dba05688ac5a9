"""`mailslot migrate --from SOURCE --to TARGET`: copy a server's users and queues between
an SQLite data dir (or database file) and PostgreSQL, in either direction
(store/transfer.py does the copying). A data dir whose server is running is refused:
the migration takes the data dir's lock as a server would.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailslot.server.config import ServerConfig, StartupError
from mailslot.server.datadir import LOCK_NAME, DataDir
from mailslot.store import StoreError, is_postgres_url
from mailslot.store.transfer import MigrationFailed, PostgresSide, SQLiteSide, copy

SQLITE_SUFFIXES = (".sqlite3", ".sqlite", ".db")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = subparsers.add_parser(
        "migrate",
        help="copy users and queues between a data dir and PostgreSQL",
        description=(
            "Copy a server's users (with password hashes) and waiting messages (with their "
            "ids, senders and times) from an SQLite data dir or database file to PostgreSQL, "
            "or back. Stop the servers on both sides first. Safe to run again: what is "
            "already there is kept, and the counts are verified."
        ),
    )
    migrate.add_argument(
        "--from", dest="source", required=True, metavar="SOURCE", help="DATA_DIR, FILE or URL"
    )
    migrate.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="TARGET",
        help="postgresql://USER@HOST/DB, or a DATA_DIR or FILE",
    )
    migrate.set_defaults(run=_run)


class SQLiteLocation:
    """A data dir (locked while the migration runs, as a server would lock it) or an
    SQLite database file."""

    def __init__(self, location: Path, *, is_source: bool) -> None:
        if location.is_dir() or (not location.exists() and location.suffix not in SQLITE_SUFFIXES):
            self.data_dir: Path | None = location
            database = ServerConfig(data_dir=location).database_file
        else:
            database = location
            holder = location.parent  # a server's data dir, if it has a lock file
            in_data_dir = location == ServerConfig(data_dir=holder).database_file
            self.data_dir = holder if in_data_dir and (holder / LOCK_NAME).exists() else None
        self.side = SQLiteSide(database, str(self.data_dir or database), is_source=is_source)

    @contextmanager
    def locked(self, *, written: bool) -> Iterator[None]:
        if self.data_dir is None:
            yield
            return
        lock = DataDir(self.data_dir, self.side.database).open()
        try:
            yield
            if written:
                lock.mark_initialised(None)  # the server adds the database id at start
        finally:
            lock.close()


def _side(location: str, *, is_source: bool) -> SQLiteLocation | PostgresSide:
    if is_postgres_url(location):
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            raise MigrationFailed(
                "PostgreSQL needs the asyncpg package: pip install 'mailslot[postgres]'"
            ) from None
        return PostgresSide(location)
    return SQLiteLocation(Path(location), is_source=is_source)


def _run(args: argparse.Namespace) -> int:
    try:
        source = _side(args.source, is_source=True)
        target = _side(args.target, is_source=False)
        if isinstance(source, PostgresSide) == isinstance(target, PostgresSide):
            raise MigrationFailed("one side must be PostgreSQL and the other a data dir or file")
        local = source if isinstance(source, SQLiteLocation) else target
        assert isinstance(local, SQLiteLocation)
        with local.locked(written=local is target):
            print(asyncio.run(copy(_store_side(source), _store_side(target))))
    except (MigrationFailed, StartupError, StoreError) as error:
        print(f"mailslot: {error}", file=sys.stderr)
        return 1
    except (OSError, sqlite3.Error) as error:
        print(f"mailslot: the migration failed: {error}", file=sys.stderr)
        return 1
    return 0


def _store_side(side: SQLiteLocation | PostgresSide) -> SQLiteSide | PostgresSide:
    return side.side if isinstance(side, SQLiteLocation) else side
