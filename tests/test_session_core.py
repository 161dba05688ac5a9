"""The session core without sockets: frames fed in, what it writes read back.

A real SQLiteStore on a temporary file and a real LocalHub; only the transport is
stood in for, by a sink that keeps what the core writes and the calls it makes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec

from mailslot.protocol import FrameTooLarge, encode
from mailslot.server.accounts import Accounts
from mailslot.server.config import Limits
from mailslot.server.connections import Connections
from mailslot.server.context import SessionContext
from mailslot.server.events import EventFeed
from mailslot.server.hub.local import LocalHub
from mailslot.server.metrics import ServerMetrics
from mailslot.server.session import (
    MAX_MALFORMED_IN_A_ROW,
    REPLIES_BEFORE_DRAIN,
    WRITE_HIGH_WATER,
    Session,
)
from mailslot.server.throttle import LoginThrottles, RepeatLog
from mailslot.store import SQLiteStore

log = logging.getLogger("mailslot.server")


class Sink:
    """The transport as the core sees it (session.Output)."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.held = 0  # bytes the peer has not taken yet
        self.closed = False
        self.aborted = False
        self.reading = True
        self.pauses = 0
        self.writable_wanted = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.written += data

    def buffered(self) -> int:
        return self.held

    def closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        assert self.reading
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        assert not self.reading
        self.reading = True

    def notify_writable(self) -> None:
        self.writable_wanted = True

    def frames(self) -> list[dict[str, Any]]:
        """Everything written so far, the welcome event left out."""
        lines = bytes(self.written).splitlines()
        return [msgspec.json.decode(line) for line in lines if b'"welcome"' not in line]

    def replies(self) -> list[dict[str, Any]]:
        return [f for f in self.frames() if "event" not in f]


class Node:
    """What a server shares between its sessions, built from the real parts."""

    def __init__(self, store: SQLiteStore, limits: Limits) -> None:
        events, metrics = EventFeed(), ServerMetrics()
        throttles = LoginThrottles(5, 30, 60)
        self.hub = LocalHub(events, metrics, throttles)
        self.connections = Connections(limits, metrics, events, RepeatLog(log, "refused"))
        self.context = SessionContext(
            software="mailslot/test",
            auth="none",
            limits=limits,
            store=store,
            hub=self.hub,
            accounts=Accounts("none", store, self.hub, throttles),
            connections=self.connections,
            metrics=metrics,
            events=events,
            refusal_log=RepeatLog(log, "refused logins"),
            slow_consumer_log=RepeatLog(log, "slow consumers"),
        )

    def connect(self) -> tuple[Session, Sink]:
        sink = Sink()
        assert self.connections.admit("127.0.0.1:1", "127.0.0.1") is None
        session = Session(self.context, sink, "127.0.0.1:1", "127.0.0.1")
        session.start()
        return session, sink

    async def logged_in(self, name: str) -> tuple[Session, Sink]:
        session, sink = self.connect()
        session.receive([frame({"id": 1, "op": "login", "user": name})])
        await until(lambda: sink.replies())
        assert sink.replies() == [
            {"id": 1, "ok": True, "user": name, "created": True, "waiting": 0}
        ]
        sink.written.clear()
        return session, sink


def frame(request: dict[str, Any]) -> bytes:
    return encode(request).rstrip(b"\n")


async def until(condition: Callable[[], object]) -> None:
    """Let the loop run (the store's thread answers meanwhile) until `condition` holds."""
    while not condition():
        await asyncio.sleep(0.001)


@asynccontextmanager
async def node(tmp_path: Path, **limits: Any) -> AsyncIterator[Node]:
    store = SQLiteStore(tmp_path / "mailslot.sqlite3")
    await store.open()
    try:
        yield Node(store, replace(Limits.unlimited(), **limits))
    finally:
        await store.close()


def test_a_reply_waiting_for_its_commit_holds_back_the_later_ones(tmp_path: Path) -> None:
    async def main() -> None:
        async with node(tmp_path) as n:
            await n.logged_in("bob")
            alice, sink = await n.logged_in("alice")
            tasks = len(asyncio.all_tasks())
            alice.receive(
                [
                    frame({"id": 2, "op": "send", "mode": "one", "to": ["bob"], "text": "one"}),
                    frame({"id": 3, "op": "ping"}),
                    frame({"id": 4, "op": "send", "mode": "one", "to": ["bob"], "text": "two"}),
                    frame({"id": 5, "op": "ping"}),
                ]
            )
            # Both sends are with the store, no task was started for them, and the
            # pongs, ready at once, wait behind the first acknowledgement.
            assert len(asyncio.all_tasks()) == tasks
            assert sink.written == b""
            await until(lambda: len(sink.replies()) == 4)
            replies = sink.replies()
            assert [r["id"] for r in replies] == [2, 3, 4, 5]
            assert replies[0]["msg"] < replies[2]["msg"]
            assert replies[1] == {"id": 3, "ok": True, "pong": True}

    asyncio.run(main())


def test_a_ping_alone_is_answered_in_the_call_that_brought_it(tmp_path: Path) -> None:
    async def main() -> None:
        async with node(tmp_path) as n:
            session, sink = n.connect()
            sink.written.clear()
            session.receive([frame({"id": 7, "op": "ping"})])
            assert sink.replies() == [{"id": 7, "ok": True, "pong": True}]

    asyncio.run(main())


def test_no_request_is_taken_while_too_many_replies_are_unwritten(tmp_path: Path) -> None:
    async def main() -> None:
        async with node(tmp_path) as n:
            alice, sink = await n.logged_in("alice")
            count = REPLIES_BEFORE_DRAIN + 8
            alice.receive([frame({"id": i, "op": "ack", "ids": [i]}) for i in range(count)])
            # Each ack waits for the store: the core stops at the bound and asks the
            # transport to stop reading.
            assert not sink.reading
            assert sink.written == b""
            await until(lambda: sink.reading)
            await until(lambda: len(sink.replies()) == count)
            assert [r["id"] for r in sink.replies()] == list(range(count))
            assert sink.pauses == 1

    asyncio.run(main())


def test_a_full_output_stops_the_requests_until_the_client_reads(tmp_path: Path) -> None:
    async def main() -> None:
        async with node(tmp_path) as n:
            session, sink = n.connect()
            sink.written.clear()
            sink.held = WRITE_HIGH_WATER + 1
            session.receive([frame({"id": 1, "op": "ping"}), frame({"id": 2, "op": "ping"})])
            assert sink.written == b""
            assert sink.writable_wanted and not sink.reading
            sink.held = 0
            session.writable()
            assert [r["id"] for r in sink.replies()] == [1, 2]
            assert sink.reading

    asyncio.run(main())


def test_a_client_that_never_reads_is_dropped_after_the_write_timeout(tmp_path: Path) -> None:
    async def main() -> None:
        async with node(tmp_path, write_timeout=0.01) as n:
            session, sink = n.connect()
            sink.held = WRITE_HIGH_WATER + 1
            session.receive([frame({"id": 1, "op": "ping"})])
            await until(lambda: sink.aborted)
            assert session.close_reason == "slow_consumer"
            session.lost(None)
            assert not n.connections.open

    asyncio.run(main())


def test_malformed_frames_in_a_row_close_the_connection(tmp_path: Path) -> None:
    async def main() -> None:
        async with node(tmp_path) as n:
            session, sink = n.connect()
            sink.written.clear()
            # a good request between bad ones starts the count again
            bad = [b"{not json"] * (MAX_MALFORMED_IN_A_ROW - 1)
            session.receive([*bad, frame({"id": 1, "op": "ping"}), *bad])
            assert not sink.closed
            session.receive([b"[]", frame({"id": 2, "op": "ping"})])
            frames = sink.frames()
            errors = [f for f in frames if f.get("ok") is False]
            assert len(errors) == 2 * (MAX_MALFORMED_IN_A_ROW - 1) + 1
            assert {e["error"] for e in errors} == {"malformed"}
            assert frames[-1] == {"event": "closing", "reason": "malformed"}
            assert {"id": 2, "ok": True, "pong": True} not in frames
            assert sink.closed

    asyncio.run(main())


def test_bye_answers_then_closes_and_ignores_what_follows(tmp_path: Path) -> None:
    async def main() -> None:
        async with node(tmp_path) as n:
            alice, sink = await n.logged_in("alice")
            alice.receive(
                [
                    frame({"id": 2, "op": "ack", "ids": [1]}),
                    frame({"id": 3, "op": "bye"}),
                    frame({"id": 4, "op": "ping"}),
                ]
            )
            assert not sink.closed  # the ack's reply is still to come
            await until(lambda: sink.closed)
            assert sink.replies() == [
                {"id": 2, "ok": True, "deleted": 0, "waiting": 0},
                {"id": 3, "ok": True, "bye": True},
            ]
            alice.lost(None)
            assert n.hub.directory.by_key["alice"].session is None
            assert not n.connections.open

    asyncio.run(main())


def test_the_frames_before_one_too_large_are_answered_first(tmp_path: Path) -> None:
    async def main() -> None:
        async with node(tmp_path) as n:
            alice, sink = await n.logged_in("alice")
            alice.frame_too_large(FrameTooLarge(100, [frame({"id": 2, "op": "check"})]))
            await until(lambda: sink.closed)
            frames = sink.frames()
            assert frames[0]["id"] == 2 and frames[0]["none"] is True
            assert frames[1]["error"] == "too_large" and frames[1]["max"] == 100
            assert frames[2] == {"event": "closing", "reason": "too_large"}

    asyncio.run(main())


def test_end_of_input_answers_what_came_before_it(tmp_path: Path) -> None:
    async def main() -> None:
        async with node(tmp_path) as n:
            await n.logged_in("bob")
            alice, sink = await n.logged_in("alice")
            alice.receive(
                [frame({"id": 2, "op": "send", "mode": "one", "to": ["bob"], "text": "hi"})]
            )
            alice.eof()
            assert not sink.closed
            await until(lambda: sink.closed)
            assert sink.replies()[0]["id"] == 2
            assert alice.close_reason == "closed by client"

    asyncio.run(main())


def test_requests_after_a_login_wait_for_it(tmp_path: Path) -> None:
    async def main() -> None:
        async with node(tmp_path) as n:
            session, sink = n.connect()
            sink.written.clear()
            session.receive(
                [
                    frame({"id": 1, "op": "login", "user": "carol"}),
                    frame({"id": 2, "op": "users"}),
                ]
            )
            assert sink.written == b""  # `users` would be refused before the login
            await until(lambda: len(sink.replies()) == 2)
            login, users = sink.replies()
            assert login["ok"] and users["users"] == [{"name": "carol", "online": True}]

    asyncio.run(main())


def test_a_lost_connection_logs_out_once_even_during_a_login(tmp_path: Path) -> None:
    async def main() -> None:
        async with node(tmp_path) as n:
            _, watched = await n.logged_in("watcher")
            session, _ = n.connect()
            session.receive([frame({"id": 1, "op": "login", "user": "dave"})])
            session.lost(ConnectionResetError())
            assert session in n.connections.open  # until the login is done
            await until(lambda: session not in n.connections.open)
            assert n.hub.directory.by_key["dave"].session is None
            events = [f for f in watched.frames() if f.get("user") == "dave"]
            assert [e["event"] for e in events] == ["new_user", "online", "offline"]
            session.lost(None)
            assert session.close_reason == "connection lost (ConnectionResetError)"

    asyncio.run(main())
