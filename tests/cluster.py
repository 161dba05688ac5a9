"""Three `mailslot server --headless` processes on one PostgreSQL schema (cluster mode,
issue 11), and the load that the failure tests drive through them.

Every node gets a name of its own per test (`a-1f3c9e`), so its PostgreSQL connections
(application_name `mailslot <node>`) can be told from those of any other test that
shares the database, and only this test's backends are ever terminated.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import psutil

from mailslot.client import (
    Client,
    ConnectError,
    ConnectionLost,
    Message,
    Unavailable,
    UsernameInUse,
)
from tests.conftest import ServerProcess, eventually
from tests.postgres import SERVER_URL

T = TypeVar("T")

# Bounds against hangs only: every client call of the failure tests must answer (or fail)
# within CALL_TIMEOUT, and a client cut off by a failure must be logged in again within
# RELOGIN_BOUND. Neither is a performance target.
CALL_TIMEOUT = 10.0
RELOGIN_BOUND = 30.0

# Nodes with the limits that would refuse a test's own load lifted: many new names and
# many requests per second from 127.0.0.1.
UNLIMITED = (
    "--rate-per-second",
    "0",
    "--new-users-per-source",
    "0",
    "--max-anonymous-per-source",
    "0",
)
# What a client may see while a node dies or loses PostgreSQL: a refusal that says to try
# again, or a closed connection. Anything else fails the test.
DISRUPTED = (Unavailable, ConnectionLost)

Address = tuple[str, int]
POSTGRES_PORT = urlsplit(SERVER_URL).port or 5432


class Node:
    def __init__(self, name: str, process: ServerProcess) -> None:
        self.name = name
        self.process = process

    @property
    def address(self) -> Address:
        return ("127.0.0.1", self.process.port)

    @property
    def alive(self) -> bool:
        return self.process.process.poll() is None

    def database_ports(self) -> set[int]:
        """The local ports of this node's connections to PostgreSQL."""
        if not self.alive:
            return set()
        connections = psutil.Process(self.process.process.pid).net_connections(kind="tcp")
        return {c.laddr.port for c in connections if c.raddr and c.raddr.port == POSTGRES_PORT}


class Cluster:
    """Nodes `a`, `b`, `c` (or the letters given) of one service on `database_url`."""

    def __init__(self, tmp_path: Path, database_url: str, letters: str = "abc") -> None:
        self.database_url = database_url
        tag = uuid.uuid4().hex[:6]
        self.nodes: dict[str, Node] = {}
        with ThreadPoolExecutor(len(letters)) as pool:
            started = {
                letter: pool.submit(self._start, f"{letter}-{tag}", tmp_path / letter)
                for letter in letters
            }
            failures = []
            for letter, future in started.items():
                try:
                    self.nodes[letter] = Node(f"{letter}-{tag}", future.result())
                except RuntimeError as error:
                    failures.append(f"node {letter}: {error}")
        if failures:
            self.stop()
            raise RuntimeError("\n".join(failures))

    def _start(self, name: str, data_dir: Path) -> ServerProcess:
        return ServerProcess(
            data_dir,
            "--auth",
            "none",
            "--database",
            self.database_url,
            "--node-name",
            name,
            "--host",
            "127.0.0.1",
            *UNLIMITED,
        )

    def __getitem__(self, letter: str) -> Node:
        return self.nodes[letter]

    def addresses(self, letters: str) -> list[Address]:
        """The nodes' addresses in this order, as a client's server list."""
        return [self.nodes[letter].address for letter in letters]

    def server_list(self, letters: str) -> str:
        """MAILSLOT_SERVER for these nodes, in this order."""
        return ",".join(f"{host}:{port}" for host, port in self.addresses(letters))

    def kill(self, letter: str) -> None:
        self.nodes[letter].process.stop(signal.SIGKILL)

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.alive:
                node.process.stop()

    async def backends(self) -> list[int]:
        """The PostgreSQL backends serving this cluster's living nodes: by the nodes'
        application names, and by the client ports of the nodes' own sockets."""
        import asyncpg

        names = [f"mailslot {node.name}" for node in self.nodes.values()]
        ports = sorted(set().union(*(node.database_ports() for node in self.nodes.values())))
        connection = await asyncpg.connect(SERVER_URL, timeout=5)
        try:
            rows = await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name LIKE 'mailslot%'"
                " AND (application_name = ANY($1::text[]) OR client_port = ANY($2::int[]))",
                names,
                ports,
            )
        finally:
            await connection.close()
        return [int(row["pid"]) for row in rows]

    async def terminate_backends(self) -> int:
        """pg_terminate_backend on each of this cluster's backends; how many there were."""
        import asyncpg

        pids = await self.backends()
        connection = await asyncpg.connect(SERVER_URL, timeout=5)
        try:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY($1::int[])",
                pids,
            )
        finally:
            await connection.close()
        return len(pids)


async def call(awaitable: Awaitable[T], what: str) -> T:
    """A client call that must answer or fail within CALL_TIMEOUT, never hang."""
    try:
        return await asyncio.wait_for(awaitable, CALL_TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"{what}: no answer within {CALL_TIMEOUT:g} s (a hang)") from None


async def log_in(
    addresses: Sequence[Address], user: str, *, seen_ids: set[int] | None = None
) -> Client:
    """`user` logged in on the first node of the list that answers, retried while the
    cluster recovers (a dead node's claim not yet released, a node without its database);
    AssertionError if that takes longer than RELOGIN_BOUND."""
    deadline = time.monotonic() + RELOGIN_BOUND
    while True:
        failure: Exception
        try:
            client = await call(
                Client.connect_first(addresses, timeout=CALL_TIMEOUT, seen_ids=seen_ids),
                f"connecting {user}",
            )
        except ConnectError as error:
            failure = error
        else:
            try:
                await call(client.login(user), f"logging {user} in")
                return client
            except (UsernameInUse, *DISRUPTED) as error:
                failure = error
                await client.close()
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{user} not logged in again within {RELOGIN_BOUND:g} s: {failure}"
            )
        await asyncio.sleep(0.05)


@dataclass
class Ledger:
    """What the load's clients were told, to compare with what the recipients got."""

    sent: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # id: from, to, text
    fetched: dict[str, dict[int, Message]] = field(default_factory=lambda: defaultdict(dict))
    deleted: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    redelivered: list[tuple[str, int]] = field(default_factory=list)  # after a confirmed ack
    disruptions: list[str] = field(default_factory=list)  # what clients saw, for the report
    logins: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def __str__(self) -> str:
        fetched = {name: len(messages) for name, messages in self.fetched.items()}
        return (
            f"{len(self.sent)} sends acknowledged, fetched {fetched},"
            f" {len(self.redelivered)} redelivered after deletion,"
            f" {len(self.disruptions)} disruptions (the last: {self.disruptions[-3:]})"
        )

    def check(self) -> None:
        """0 acknowledged messages lost, none misrouted or altered, none delivered again
        after its deletion was acknowledged."""
        assert self.sent, "no send was acknowledged: the load never ran"
        lost = [
            (sender, to, text)
            for msg_id, (sender, to, text) in self.sent.items()
            if msg_id not in self.fetched[to]
        ]
        assert not lost, f"{len(lost)} of {len(self.sent)} acknowledged messages lost: {lost[:5]}"
        for recipient, messages in self.fetched.items():
            for msg_id, message in messages.items():
                if msg_id in self.sent:
                    sender, to, text = self.sent[msg_id]
                    assert (to, sender, text) == (recipient, message.sender, message.text), (
                        f"message {msg_id} for {to} from {sender} reached {recipient}"
                        f" as {message.sender}: {message.text!r}"
                    )
        assert not self.redelivered, f"deleted messages delivered again: {self.redelivered[:5]}"


class Load:
    """Senders sending one-to-one as fast as they are answered, and recipients checking
    and acknowledging, each going back to its server list whenever it is cut off."""

    def __init__(self) -> None:
        self.ledger = Ledger()
        self.stopping = asyncio.Event()
        self.senders: list[asyncio.Task[None]] = []
        self.receivers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Load:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Whatever failed, no client is left running (nor its failure unread)."""
        self.stopping.set()
        running = {*self.senders, *self.receivers}
        while running:
            # Again and again: Python 3.11's wait_for loses a cancellation that comes as
            # the call it waits for completes.
            for task in running:
                task.cancel()
            _, running = await asyncio.wait(running, timeout=0.1)
        for task in (*self.senders, *self.receivers):
            if not task.cancelled():
                task.exception()  # read, so that asyncio does not log it as lost

    def add_sender(self, name: str, servers: Sequence[Address], recipients: Sequence[str]) -> None:
        self.senders.append(asyncio.create_task(self._send(name, servers, recipients)))

    def add_recipient(self, name: str, servers: Sequence[Address]) -> None:
        self.receivers.append(asyncio.create_task(self._receive(name, servers)))

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait for ``condition`` while the load runs; a client that failed fails it."""

        def reached() -> bool:
            for task in (*self.senders, *self.receivers):
                failure = task.exception() if task.done() else None
                if failure is not None:
                    raise AssertionError(
                        f"a client of the load failed while waiting for {what}:"
                        f" {type(failure).__name__}: {failure}"
                    ) from failure
            return condition()

        await eventually(reached, what, timeout=RELOGIN_BOUND)

    async def finish(self) -> None:
        """Stop sending, then let every recipient check until its queue is empty."""
        self.stopping.set()
        try:
            await asyncio.wait_for(
                asyncio.gather(*self.senders, *self.receivers), CALL_TIMEOUT + RELOGIN_BOUND
            )
        except TimeoutError:
            raise AssertionError(f"the load did not wind down: {self.ledger}") from None

    async def _send(self, name: str, servers: Sequence[Address], recipients: Sequence[str]) -> None:
        client = await log_in(servers, name)
        self.ledger.logins[name].append(time.monotonic())
        number = 0
        try:
            while not self.stopping.is_set():
                to = recipients[number % len(recipients)]
                text = f"{name} #{number}"
                number += 1
                try:
                    result = await call(client.send(text, to=[to]), f"{name} sending")
                except DISRUPTED as error:
                    self.ledger.disruptions.append(f"{name}: {error.code}: {error}")
                    await client.close()
                    client = await log_in(servers, name)
                    self.ledger.logins[name].append(time.monotonic())
                    continue
                self.ledger.sent[result.id] = (name, to, text)
        finally:
            await client.close()

    async def _receive(self, name: str, servers: Sequence[Address]) -> None:
        # The library hides a message it has handed out before; forgetting each batch
        # once its deletion is confirmed lets a redelivery of it show here.
        handed_out: set[int] = set()
        client = await log_in(servers, name, seen_ids=handed_out)
        self.ledger.logins[name].append(time.monotonic())
        try:
            while True:
                draining = self.stopping.is_set() and all(task.done() for task in self.senders)
                try:
                    messages = await call(client.fetch(), f"{name} checking")
                    for message in messages:
                        if message.id in self.ledger.deleted[name]:
                            self.ledger.redelivered.append((name, message.id))
                        self.ledger.fetched[name][message.id] = message
                    await call(client.ack(m.id for m in messages), f"{name} acknowledging")
                except DISRUPTED as error:
                    self.ledger.disruptions.append(f"{name}: {error.code}: {error}")
                    await client.close()
                    handed_out.clear()
                    client = await log_in(servers, name, seen_ids=handed_out)
                    self.ledger.logins[name].append(time.monotonic())
                    continue
                self.ledger.deleted[name].update(m.id for m in messages)
                handed_out.clear()
                if draining and not messages:
                    return
                await asyncio.sleep(0.02)
        finally:
            await client.close()
