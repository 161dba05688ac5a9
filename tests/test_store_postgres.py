"""What only the PostgreSQL store has: a schema of numbered migrations, several stores
on one database, a database server that goes away and comes back, and a database
server whose disk is full (a tablespace on a tiny tmpfs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from mailslot.store import NewMessage, StorageFull, StoreError, StoreUnavailable
from mailslot.store.postgres import PostgresStore, migrations
from tests.conftest import run
from tests.postgres import SERVER_URL, admin, execute, require_postgres


def _schema(url: str) -> str:
    return url.rsplit("search_path=", 1)[1]


def test_the_schema_is_created_at_open_and_kept(postgres_url: str) -> None:
    async def scenario() -> None:
        for _ in range(2):
            store = PostgresStore(postgres_url)
            await store.open()
            await store.close()
        connection = await asyncpg.connect(postgres_url)
        try:
            rows = await connection.fetch("SELECT version, name FROM mailslot_schema")
        finally:
            await connection.close()
        assert [tuple(row) for row in rows] == [(v, name) for v, name, _ in migrations()]

    run(scenario())


def test_a_schema_newer_than_the_code_is_refused_with_one_sentence(postgres_url: str) -> None:
    async def scenario() -> None:
        store = PostgresStore(postgres_url)
        await store.open()
        await store.close()

    run(scenario())
    admin(f"INSERT INTO {_schema(postgres_url)}.mailslot_schema VALUES (99, '0099_future.sql')")
    with pytest.raises(StoreError) as refused:
        run(PostgresStore(postgres_url).open())
    message = str(refused.value)
    assert "schema version 99, newer than this Mailslot's" in message
    assert "\n" not in message and message.count(";") == 1


def test_a_store_does_not_open_while_a_migration_holds_the_database(postgres_url: str) -> None:
    async def scenario() -> None:
        from mailslot.store.postgres import NODES_LOCK_KEY

        migration = await asyncpg.connect(postgres_url)  # as `mailslot migrate` does
        try:
            assert await migration.fetchval(f"SELECT pg_try_advisory_lock({NODES_LOCK_KEY})")
            with pytest.raises(StoreUnavailable, match="mailslot migrate is copying data"):
                await PostgresStore(postgres_url).open()
        finally:
            await migration.close()
        store = PostgresStore(postgres_url)
        await store.open()
        await store.close()

    run(scenario())


def test_backup_says_to_use_pg_dump(postgres_url: str) -> None:
    async def scenario() -> None:
        store = PostgresStore(postgres_url)
        await store.open()
        with pytest.raises(StoreError, match="pg_dump"):
            await store.backup(Path("/nonexistent/backup.sqlite3"))
        await store.close()

    run(scenario())


def test_two_stores_on_one_database_share_users_and_ids(postgres_url: str) -> None:
    """Two nodes: they open at once (the schema is created once), a user created on one
    is known to the other, and their concurrent sends get distinct ids."""

    async def scenario() -> None:
        a, b = PostgresStore(postgres_url), PostgresStore(postgres_url)
        await asyncio.gather(a.open(), b.open())
        alice = await a.create_user("alice", "Alice", None, 1)
        assert [user.key for user in await b.load_users()] == ["alice"]
        with pytest.raises(StoreError):
            await b.create_user("alice", "alice", None, 2)
        sends = [
            store.enqueue([NewMessage("x", [alice.id], f"{number}", number)])
            for number in range(200)
            for store in (a, b)
        ]
        ids = [message_id for (message_id,) in await asyncio.gather(*sends)]
        assert len(set(ids)) == 400
        batch = await b.fetch(alice.id, 1000)
        assert sorted(m.id for m in batch.messages) == sorted(ids)
        await asyncio.gather(a.close(), b.close())

    run(scenario())


def test_a_broadcast_acked_through_two_stores_at_once_leaves_nothing_behind(
    postgres_url: str,
) -> None:
    """Its recipients acknowledge a broadcast on two nodes at the same time: the shared
    text's reference count takes every ack (rows locked, no lost update) and the text
    goes with the last."""

    async def scenario() -> None:
        a, b = PostgresStore(postgres_url), PostgresStore(postgres_url)
        await asyncio.gather(a.open(), b.open())
        users = [(await a.create_user(f"u{i}", f"u{i}", None, i)).id for i in range(200)]
        for _ in range(5):
            (message_id,) = await a.enqueue([NewMessage("u0", users, "to all", 1)])
            acks = [
                (a if n % 2 else b).ack(user_id, [message_id]) for n, user_id in enumerate(users)
            ]
            assert await asyncio.gather(*acks) == [1] * len(users)
        connection = await asyncpg.connect(postgres_url)
        try:
            assert await connection.fetchval("SELECT count(*) FROM messages") == 0
            assert await connection.fetchval("SELECT count(*) FROM queue") == 0
        finally:
            await connection.close()
        await asyncio.gather(a.close(), b.close())

    run(scenario())


def test_a_terminated_backend_is_replaced_and_nothing_is_lost(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """pg_terminate_backend on the store's connection: the next operations run on a
    new connection, and what was stored before is still there."""
    name = f"mailslot-test-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        store = PostgresStore(postgres_url, server_settings={"application_name": name})
        await store.open()
        bob = await store.create_user("bob", "bob", None, 0)
        (before,) = await store.enqueue([NewMessage("a", [bob.id], "before", 1)])
        await execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE application_name = '{name}'"
        )
        (after,) = await store.enqueue([NewMessage("a", [bob.id], "after", 2)])
        batch = await store.fetch(bob.id, 10)
        assert [(m.id, m.text) for m in batch.messages] == [(before, "before"), (after, "after")]
        await store.close()

    with caplog.at_level(logging.WARNING, logger="mailslot.store.postgres"):
        run(scenario())
    assert any("reconnecting" in record.getMessage() for record in caplog.records)


async def send_once_back(store: PostgresStore, user_id: int, text: str) -> int:
    """Send as soon as the store can reach PostgreSQL again; the message's id."""
    deadline = time.monotonic() + 30
    while True:
        try:
            (message_id,) = await store.enqueue([NewMessage("a", [user_id], text, 3)])
            return message_id
        except StoreUnavailable:
            assert time.monotonic() < deadline, "the store did not reconnect"
            await asyncio.sleep(0.05)


class Proxy:
    """A TCP relay on 127.0.0.1 to the PostgreSQL server, which the test can cut (every
    connection dropped, new ones refused) and restore on the same port, or freeze
    (connections stay open, nothing goes through: a server that hangs) and thaw."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    await self.flowing.wait()
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


def test_a_database_server_that_goes_away_is_unavailable_at_once_then_used_again(
    postgres_url: str,
) -> None:
    """While PostgreSQL cannot be reached, every operation fails promptly with
    StoreUnavailable; once it is back, the store reconnects (after its back-off) and
    everything acknowledged before is still there."""

    async def scenario() -> None:
        proxy = Proxy(5432)
        await proxy.start()
        url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        store = PostgresStore(url)
        await store.open()
        bob = await store.create_user("bob", "bob", None, 0)
        acknowledged = [
            message_id
            for (message_id,) in await asyncio.gather(
                *(store.enqueue([NewMessage("a", [bob.id], f"m{n}", n)]) for n in range(50))
            )
        ]
        await proxy.cut()
        for _ in range(5):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(store.enqueue([NewMessage("a", [bob.id], "x", 9)]), 30)
            assert time.monotonic() - started < 5.5  # at most the connect timeout
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.fetch(bob.id, 10), 30)
        await proxy.start()
        later = await send_once_back(store, bob.id, "later")
        batch = await store.fetch(bob.id, 100)
        assert [m.id for m in batch.messages] == [*acknowledged, later]
        await store.close()
        await proxy.cut()

    run(scenario())


def test_a_database_server_that_hangs_is_unavailable_after_the_timeout(postgres_url: str) -> None:
    """PostgreSQL stops answering (connections open, nothing comes back): the statement
    under way fails after the command timeout, a new connection after the connect
    timeout, both with StoreUnavailable; once it answers again, the store goes on."""

    async def scenario() -> None:
        proxy = Proxy(5432)
        await proxy.start()
        url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        store = PostgresStore(url, command_timeout=1.0, connect_timeout=1.0)
        await store.open()
        bob = await store.create_user("bob", "bob", None, 0)
        (before,) = await store.enqueue([NewMessage("a", [bob.id], "before", 1)])
        proxy.flowing.clear()
        for _ in range(2):  # the statement under way, then a new connection
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(store.enqueue([NewMessage("a", [bob.id], "x", 2)]), 30)
            assert time.monotonic() - started < 2.5
        proxy.flowing.set()
        after = await send_once_back(store, bob.id, "after")
        batch = await store.fetch(bob.id, 10)
        assert [m.text for m in batch.messages if m.id in (before, after)] == ["before", "after"]
        await store.close()
        await proxy.cut()

    run(scenario())


def test_an_unreachable_or_missing_database_is_refused_at_open_with_a_sentence(
    postgres_url: str,  # the server is there, but not this database
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(StoreUnavailable, match=r"^cannot connect to the database postgresql://"):
        run(PostgresStore(f"postgresql://postgres@127.0.0.1:{closed_port}/test").open())
    missing = SERVER_URL.rsplit("/", 1)[0] + "/mailslot_no_such_database"
    with pytest.raises(StoreUnavailable, match="does not exist; create it first"):
        run(PostgresStore(missing).open())


@pytest.fixture
def tiny_tablespace() -> Iterator[str]:
    """A PostgreSQL tablespace on a 2 MiB tmpfs (needs root, as in CI).

    The tmpfs is unmounted only once the tablespace is dropped and a checkpoint is
    done: a tablespace whose files vanish makes PostgreSQL's next checkpoint PANIC,
    and its crash recovery then needs the directory back."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        reason = "a tablespace on a tiny tmpfs needs root"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    require_postgres()
    parent = Path(tempfile.mkdtemp(prefix="mailslot-pg-"))
    parent.chmod(0o711)  # the postgres user must reach the mount point
    disk = parent / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    name = f"mailslot_test_{uuid.uuid4().hex[:12]}"
    created = False
    try:
        shutil.chown(disk, "postgres", "postgres")
        admin(f"CREATE TABLESPACE {name} LOCATION '{disk}'")
        created = True
        yield name
    finally:
        if created:  # if this fails, the tmpfs stays: PostgreSQL still refers to it
            admin(f"DROP TABLESPACE {name}")
            admin("CHECKPOINT")
        subprocess.run(["umount", str(disk)], check=True)
        shutil.rmtree(parent)


def test_a_full_disk_refuses_new_mail_but_not_acks(tiny_tablespace: str, postgres_url: str) -> None:
    async def scenario() -> None:
        store = PostgresStore(postgres_url, server_settings={"default_tablespace": tiny_tablespace})
        await store.open()
        bob = await store.create_user("bob", "bob", None, 0)
        stored: list[int] = []
        with pytest.raises(StorageFull, match="disk is full"):
            for _ in range(200):  # 2 MiB holds fewer than 200 of these
                text = os.urandom(16_000).hex()  # not compressible
                stored += await store.enqueue([NewMessage("a", [bob.id], text, 1)])
        assert stored
        batch = await store.fetch(bob.id, 1000)
        assert [m.id for m in batch.messages] == stored
        assert await store.ack(bob.id, stored) == len(stored)
        await store.check_writable()
        await store.close()

    run(scenario())
