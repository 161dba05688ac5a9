"""`mailslot migrate`: a real server's data dir to the local PostgreSQL and back, with
real servers before and after."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from mailslot.cli import main
from mailslot.client import MailslotError
from mailslot.server import ServerThread
from mailslot.store import NewMessage, SQLiteStore
from mailslot.store.postgres import PostgresStore
from tests.conftest import ServerFactory, connect, run

# Every waiting message as its recipient sees it, whatever the store keeps it as.
QUEUE_VIEW = (
    "SELECT u.key, q.message_id, coalesce(q.sender, m.sender),"
    " coalesce(q.received_at, m.received_at), coalesce(q.text, m.text)"
    " FROM queue q JOIN users u ON u.id = q.user_id"
    " LEFT JOIN messages m ON q.text IS NULL AND m.id = q.message_id"
    " ORDER BY u.key, q.message_id"
)
USERS_VIEW = "SELECT id, key, name, password_hash, created_at FROM users ORDER BY id"


def dump_sqlite(data_dir: Path) -> dict[str, Any]:
    with sqlite3.connect(data_dir / "mailslot.sqlite3") as db:
        return {
            "users": db.execute(USERS_VIEW).fetchall(),
            "queue": db.execute(QUEUE_VIEW).fetchall(),
            "last_message_id": db.execute(
                "SELECT value FROM counters WHERE name = 'last_message_id'"
            ).fetchone()[0],
        }


async def dump_postgres(url: str) -> dict[str, Any]:
    connection = await asyncpg.connect(url)
    try:
        return {
            "users": [tuple(row) for row in await connection.fetch(USERS_VIEW)],
            "queue": [tuple(row) for row in await connection.fetch(QUEUE_VIEW)],
            "last_message_id": await connection.fetchval("SELECT last_value FROM message_ids"),
        }
    finally:
        await connection.close()


def migrate(
    capsys: pytest.CaptureFixture[str], source: Path | str, target: Path | str
) -> tuple[int, str]:
    """Run `mailslot migrate`; its exit code and what it printed (stdout or stderr)."""
    code = main(["migrate", "--from", str(source), "--to", str(target)])
    out, err = capsys.readouterr()
    return code, (out + err).strip()


async def _fill(server: ServerThread) -> list[int]:
    """Alice (with a password) and two more users, mail one-to-one, to several and to
    all; carol reads and acknowledges hers. The ids of what was sent."""
    alice = await connect(server)
    await alice.login("Alice", "alice's password")
    bob = await connect(server)
    await bob.login("bob", "bob's password")
    carol = await connect(server)
    await carol.login("carol", "carol's password")
    sent = [
        (await alice.send("hello bob", to=["bob"])).id,
        (await alice.send("to you two", to=["bob", "carol"])).id,
        (await bob.send("to everyone, ünïcode ✉", everyone=True)).id,
        (await bob.send("for carol", to=["carol"])).id,
    ]
    await carol.check()
    for client in (alice, bob, carol):
        await client.close()
    return sent


def test_a_data_dir_to_postgresql_and_back_keeps_everything(
    start_server: ServerFactory,
    postgres_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first = start_server("password", data_dir=first_dir)
    sent = run(_fill(first))
    first.stop()
    original = dump_sqlite(first_dir)
    assert len(original["users"]) == 3 and len(original["queue"]) == 3

    code, said = migrate(capsys, first_dir, postgres_url)
    assert code == 0, said
    assert said.startswith("copied 3 users and 3 waiting messages (2 texts shared")
    assert run(dump_postgres(postgres_url)) == original

    code, said = migrate(capsys, first_dir, postgres_url)  # again: nothing changes
    assert code == 0 and "already held everything" in said
    assert run(dump_postgres(postgres_url)) == original

    code, said = migrate(capsys, postgres_url, second_dir)
    assert code == 0, said
    assert dump_sqlite(second_dir) == original

    async def use_the_copy(server: ServerThread) -> None:
        alice = await connect(server)
        await alice.login("alice", "alice's password")
        with pytest.raises(MailslotError):
            await (await connect(server)).login("bob", "wrong")
        bob = await connect(server)
        await bob.login("bob", "bob's password")
        assert [(m.id, m.sender, m.text) for m in await bob.check()] == [
            (sent[0], "Alice", "hello bob"),
            (sent[1], "Alice", "to you two"),
        ]
        assert [(m.id, m.sender, m.text) for m in await alice.check()] == [
            (sent[2], "bob", "to everyone, ünïcode ✉"),
        ]
        later = await alice.send("after the move", to=["bob"])
        assert later.id > max(sent)
        for client in (alice, bob):
            await client.close()

    run(use_the_copy(start_server("password", data_dir=second_dir)))


def test_ids_handed_out_before_are_not_handed_out_again_after_a_move(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Acknowledged messages and deleted users leave nothing behind to copy, but their
    ids stay used: clients de-duplicate by message id."""
    data_dir = tmp_path / "data"

    async def before() -> tuple[int, int]:
        store = SQLiteStore(data_dir / "mailslot.sqlite3")
        await store.open()
        bob = await store.create_user("bob", "bob", None, 1)
        gone = await store.create_user("gone", "gone", None, 2)
        ids = await store.enqueue([NewMessage("x", [bob.id], f"m{n}", n) for n in range(5)])
        await store.ack(bob.id, ids)
        await store.delete_user(gone.id)
        await store.close()
        return gone.id, max(ids)

    async def after() -> tuple[int, int]:
        store = PostgresStore(postgres_url)
        await store.open()
        newcomer = await store.create_user("newcomer", "newcomer", None, 3)
        (message_id,) = await store.enqueue([NewMessage("x", [newcomer.id], "hi", 4)])
        await store.close()
        return newcomer.id, message_id

    last_user, last_message = run(before())
    code, said = migrate(capsys, data_dir, postgres_url)
    assert code == 0, said
    assert said.startswith("copied 1 user and 0 waiting messages (0 texts shared")
    new_user, new_message = run(after())
    assert new_user > last_user and new_message > last_message


def test_a_running_servers_data_dir_is_refused(
    start_server: ServerFactory,
    postgres_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = tmp_path / "data"
    start_server(data_dir=data_dir)
    for source, target in ((data_dir, postgres_url), (postgres_url, data_dir)):
        code, said = migrate(capsys, source, target)
        assert code == 1
        assert said.startswith("mailslot: another Mailslot server (pid ")
        assert said.count("\n") == 0


def test_a_database_in_use_or_holding_other_users_is_refused(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"

    async def make_source() -> None:
        store = SQLiteStore(data_dir / "mailslot.sqlite3")
        await store.open()
        await store.create_user("alice", "alice", None, 1)
        await store.close()

    run(make_source())

    async def node_on_postgres() -> tuple[int, str]:
        node = PostgresStore(postgres_url)
        await node.open()
        await node.create_user("zed", "zed", None, 1)
        try:
            return await asyncio.to_thread(migrate, capsys, postgres_url, tmp_path / "copy")
        finally:
            await node.close()

    code, said = run(node_on_postgres())
    assert code == 1
    assert said == f"mailslot: Mailslot servers are using {postgres_url}; stop them first"
    code, said = migrate(capsys, data_dir, postgres_url)
    assert code == 1
    assert "already holds users that the source does not have under the same id" in said
    assert "'zed'" in said


def test_nonsense_is_refused_with_a_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said = migrate(capsys, tmp_path / "nothing-here", "postgresql://127.0.0.1/x")
    missing = tmp_path / "nothing-here" / "mailslot.sqlite3"
    assert (code, said) == (1, f"mailslot: there is no Mailslot database at {missing}")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "mailslot.sqlite3").touch()
    code, said = migrate(capsys, tmp_path / "a", tmp_path / "b")
    assert (code, said) == (
        1,
        "mailslot: one side must be PostgreSQL and the other a data dir or file",
    )


def test_a_bare_database_file_to_postgresql_and_into_another_file(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"

    async def make_source() -> None:
        store = SQLiteStore(source)
        await store.open()
        alice = await store.create_user("alice", "Alice", "scrypt$x", 1)
        await store.enqueue([NewMessage("bob", [alice.id], "hi", 2)])
        await store.close()

    run(make_source())
    assert migrate(capsys, source, postgres_url)[0] == 0
    code, said = migrate(capsys, postgres_url, target)
    assert code == 0, said
    assert said.endswith(f"to {target}; counts verified")
    with sqlite3.connect(source) as old, sqlite3.connect(target) as new:
        for view in (USERS_VIEW, QUEUE_VIEW):
            assert old.execute(view).fetchall() == new.execute(view).fetchall()
    assert not (tmp_path / "mailslot.initialised").exists()  # a file, not a data dir
