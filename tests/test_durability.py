"""Nothing acknowledged is lost (B1, S19, S22): restarts, SIGKILL, dropped checks."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from mailslot.client import Client, Disconnected
from tests.conftest import ServerFactory, ServerProcess, connect, eventually, online, run
from tests.test_wire import Raw


def test_the_log_and_every_queue_survive_a_restart(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    data = tmp_path / "kept"
    first = start_server(data_dir=data)

    async def before() -> None:
        alice, bob = await connect(first, "Alice"), await connect(first, "bob")
        await (await connect(first, "carol")).close()  # never gets mail: an empty queue
        await alice.send("kept", to=["bob"])
        await bob.send("also kept", everyone=True)
        await alice.close()
        await bob.close()

    run(before())
    first.stop()
    second = start_server(data_dir=data)

    async def after() -> None:
        carol = await connect(second, "CAROL")
        assert [(u.name, u.online) for u in await carol.users()] == [
            ("Alice", False),
            ("bob", False),
            ("carol", True),
        ]
        assert [m.text for m in await carol.check()] == ["also kept"]
        bob = await connect(second, "bob")
        assert [(m.sender, m.text) for m in await bob.check()] == [("Alice", "kept")]
        alice = await connect(second, "alice")
        assert [m.text for m in await alice.check()] == ["also kept"]
        assert (await (await connect(second)).login("dave")).created
        for client in (alice, bob, carol):
            await client.close()

    run(after())


def test_sigkill_right_after_acknowledgements_loses_nothing(
    server_process: Any, tmp_path: Path
) -> None:
    data = tmp_path / "killed"
    process: ServerProcess = server_process("--auth", "none", "--no-limits", data_dir=data)

    async def send_many() -> list[int]:
        senders = [await connect(process.port, f"s{i}") for i in range(4)]
        receiver = await connect(process.port, "r")
        await receiver.close()
        results = await asyncio.gather(
            *(s.send(f"{i}-{n}", to=["r"]) for i, s in enumerate(senders) for n in range(250))
        )
        return [r.id for r in results]

    acknowledged = run(send_many())
    process.stop(signal.SIGKILL)  # no chance to flush anything after the replies
    restarted: ServerProcess = server_process("--auth", "none", data_dir=data)

    async def drain() -> list[int]:
        client = await connect(restarted.port, "r")
        messages = await client.check()
        await client.close()
        return [m.id for m in messages]

    assert sorted(run(drain())) == sorted(acknowledged)


def test_a_connection_dropped_mid_check_loses_nothing_and_shows_each_once(
    start_server: ServerFactory,
) -> None:
    server = start_server()

    async def send() -> None:
        alice = await connect(server, "alice")
        await (await connect(server, "bob")).close()
        for n in range(5):
            await alice.send(f"m{n}", to=["bob"])
        await alice.close()

    run(send())
    raw = Raw(server.port)
    raw.request({"op": "login", "id": 1, "user": "bob"})
    raw.send(b'{"op":"check","id":2}\n')
    partial = raw.sock.recv(200)  # part of the reply, then the line goes dead
    assert partial
    raw.sock.shutdown(socket.SHUT_RDWR)
    raw.sock.close()

    seen: set[int] = set()

    async def reconnecting_reader() -> list[list[str]]:
        shown = []
        first = await Client.connect("127.0.0.1", server.port, seen_ids=seen)
        await first.login("bob")
        fetched = await first.fetch()  # handed to the app ...
        shown.append([m.text for m in fetched])
        first._writer.transport.abort()  # ... and the connection dies before the ack
        await eventually(lambda: not online(server, "bob"), "the server to see bob gone")
        second = await Client.connect("127.0.0.1", server.port, seen_ids=seen)
        await second.login("bob")
        shown.append([m.text for m in await second.check()])  # redelivered, not shown
        await second.close()
        third = await connect(server, None)
        await third.login("bob")
        shown.append([m.text for m in await third.check()])
        await third.close()
        return shown

    assert run(reconnecting_reader()) == [["m0", "m1", "m2", "m3", "m4"], [], []]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_the_server_stops_cleanly_on_a_signal(
    server_process: Any, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    data = tmp_path / "signalled"
    process: ServerProcess = server_process("--auth", "none", data_dir=data)

    async def connected_while_stopping() -> str:
        alice = await connect(process.port, "alice")
        await alice.send("before the stop", to=["alice"])
        process.process.send_signal(stop_signal)
        event = await asyncio.wait_for(_disconnected(alice), 10)
        return event.reason

    assert run(connected_while_stopping()) == "the server shut down"
    assert process.process.wait(10) == 0
    log = process.log_path.read_text()
    assert "stopped" in log and "Traceback" not in log
    restarted: ServerProcess = server_process("--auth", "none", data_dir=data)

    async def after() -> list[str]:
        alice = await connect(restarted.port, "alice")
        texts = [m.text for m in await alice.check()]
        await alice.close()
        return texts

    assert run(after()) == ["before the stop"]


async def _disconnected(client: Client) -> Disconnected:
    while True:
        event = await client.next_event()
        if isinstance(event, Disconnected):
            return event
