"""A server keeping its users and queues in PostgreSQL (`--database`), as a real process.

One server per database until cluster mode exists: a second one is refused with a
sentence rather than left to disagree with the first about who is online.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailslot.client import Client
from tests.conftest import run
from tests.test_datadir import refusal


def test_users_and_queues_live_in_postgresql_across_restarts(
    tmp_path: Path, server_process: Any, postgres_url: str
) -> None:
    first = server_process(
        "--auth",
        "none",
        "--database",
        postgres_url,
        "--node-name",
        "a",
        data_dir=tmp_path / "a",
    )

    async def send() -> None:
        alice = await Client.connect("127.0.0.1", first.port)
        await alice.login("alice")
        bob = await Client.connect("127.0.0.1", first.port)
        await bob.login("bob")
        for text in ("one", "two"):
            await alice.send(text, to=["bob"])
        await alice.send("to all", everyone=True)
        await alice.close()
        await bob.close()

    run(send())
    log = first.stop()
    assert "a listening on" in log and "postgresql://postgres@127.0.0.1:5432/test" in log
    assert not (tmp_path / "a" / "mailslot.sqlite3").exists()  # nothing kept in the data dir
    second = server_process("--auth", "none", "--database", postgres_url, data_dir=tmp_path / "b")

    async def check() -> list[str]:
        bob = await Client.connect("127.0.0.1", second.port)
        await bob.login("bob")
        texts = [m.text for m in await bob.check()]
        await bob.close()
        return texts

    assert run(check()) == ["one", "two", "to all"]


def test_a_second_node_on_one_database_serves_the_same_users(
    tmp_path: Path, server_process: Any, postgres_url: str
) -> None:
    common = ("--auth", "none", "--database", postgres_url)
    first = server_process(*common, "--node-name", "a", data_dir=tmp_path / "a")
    second = server_process(*common, "--node-name", "b", data_dir=tmp_path / "b")

    async def across() -> list[str]:
        alice = await Client.connect("127.0.0.1", first.port)
        await alice.login("alice")
        bob = await Client.connect("127.0.0.1", second.port)
        await bob.login("bob")
        await alice.send("across nodes", to=["bob"])
        texts = [m.text for m in await bob.check()]
        await alice.close()
        await bob.close()
        return texts

    assert run(across()) == ["across nodes"]


def test_a_database_that_is_not_postgresql_is_one_sentence(tmp_path: Path) -> None:
    sentence = refusal(tmp_path / "data", "--database", "mysql://localhost/x")
    assert sentence.startswith("--database takes a PostgreSQL URL"), sentence
