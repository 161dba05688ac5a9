"""Hostile and clumsy peers over raw sockets: every one gets an error code or a clean
disconnect within a second, and everyone else keeps being served."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from mailslot.server import ServerThread
from tests.conftest import ServerFactory, connect, eventually, online, run


class Raw:
    """A hand-typed session, as with nc."""

    def __init__(self, port: int) -> None:
        # Every read gives up after a second: a reply or a disconnect must come by then.
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=1)
        self.file = self.sock.makefile("rb")
        self.welcome = self.read()
        assert self.welcome["event"] == "welcome"

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        self.send(json.dumps(frame).encode() + b"\n")
        return self.read_reply()

    def read(self) -> dict[str, Any]:
        line = self.file.readline()
        assert line, "connection closed"
        value: dict[str, Any] = json.loads(line)
        return value

    def read_reply(self) -> dict[str, Any]:
        while True:
            frame = self.read()
            if "event" not in frame:
                return frame

    def closed_within(self, seconds: float = 1.0) -> bool:
        self.sock.settimeout(seconds)
        try:
            while self.file.readline():
                pass
        except TimeoutError:
            return False
        return True


def test_typed_by_hand_like_with_nc(server: ServerThread) -> None:
    raw = Raw(server.port)
    assert raw.welcome["versions"] == [1]
    assert raw.request({"op": "hello", "id": 1, "version": 1}) == {
        "id": 1,
        "ok": True,
        "version": 1,
    }
    assert raw.request({"op": "hello", "id": 2, "version": 9})["error"] == "unsupported_version"
    raw.send(b'{"op":"login","id":3,"user":"alice"}\r\n\r\n')
    assert raw.read_reply()["user"] == "alice"
    reply = raw.request({"op": "send", "id": 4, "mode": "one", "to": ["a", "b"], "text": "x"})
    assert reply["error"] == "too_many_recipients"
    assert raw.request({"op": "check", "id": 5}) == {
        "id": 5,
        "ok": True,
        "messages": [],
        "more": False,
        "none": True,
    }
    assert raw.request({"op": "bye", "id": 6})["bye"] is True
    assert raw.closed_within(1)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"garbage\n", "malformed"),
        (b"\xff\xfe\xfa\xfb\n", "malformed"),
        (b"[1, 2]\n", "malformed"),
        (b'"just a string"\n', "malformed"),
        (b'{"op": 5}\n', "malformed"),
        (b'{"op": "send", "id": 1, "text": 42}\n', "malformed"),
        (b'{"op":"x","id":9}\n', "unknown_op"),
        (b'{"op":"ping","n":' + b"[" * 30_000 + b"]" * 30_000 + b"}\n", "malformed"),
        (b'{"op": "users", "id": 2}\n', "not_logged_in"),
        (b'{"op": "check", "id": 3}\n', "not_logged_in"),
        (b'{"op": "ack", "id": 4, "ids": [1]}\n', "not_logged_in"),
    ],
)
def test_bad_frames_get_an_error_and_the_connection_goes_on(
    server: ServerThread, line: bytes, code: str
) -> None:
    raw = Raw(server.port)
    raw.send(line)
    reply = raw.read_reply()
    assert reply["ok"] is False and reply["error"] == code and reply["message"]
    assert raw.request({"op": "ping", "id": 99})["pong"] is True


def test_a_16_mib_line_is_refused_and_the_connection_closed(server: ServerThread) -> None:
    raw = Raw(server.port)
    bystander = Raw(server.port)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        raw.send(b"x" * (16 * 1024 * 1024) + b"\n")  # the server may hang up midway
    replies = []
    with contextlib.suppress(ConnectionResetError):
        while frame := raw.file.readline():
            replies.append(json.loads(frame))
    assert replies and replies[0]["error"] == "too_large"
    assert {"event": "closing", "reason": "too_large"} in replies
    assert bystander.request({"op": "ping", "id": 1})["pong"] is True


def test_endless_malformed_frames_end_in_a_disconnect(server: ServerThread) -> None:
    raw = Raw(server.port)
    raw.send(b"nonsense\n" * 50)
    assert raw.closed_within(1)


def test_a_client_that_never_reads_is_dropped_and_the_rest_are_served(
    start_server: ServerFactory,
) -> None:
    server = start_server(max_output_buffer=64 * 1024, rate_per_second=0)
    sink = Raw(server.port)
    sink.request({"op": "login", "id": 1, "user": "sink"})
    sink.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    async def flood() -> None:
        sender = await connect(server, "flooder")
        bystander = await connect(server, "bystander")
        text = "y" * 1000
        for _ in range(20):
            # checks that are never read back fill the sink's socket, then mail
            # events pile up in its output buffer until the server drops it
            sink.send(b'{"op":"check","id":7}\n' * 50)
            await asyncio.gather(*(sender.send(text, to=["sink"]) for _ in range(50)))
            if not online(server, "sink"):
                break
        await eventually(lambda: not online(server, "sink"), "the server to drop the sink")
        snapshot = {u.name: u for u in server.snapshot().users}
        assert snapshot["sink"].waiting > 0  # nothing lost: still queued
        await bystander.send("still here", to=["flooder"])
        assert [m.text for m in await sender.check()] == ["still here"]
        await sender.close()
        await bystander.close()

    run(flood())


def test_a_silent_connection_does_not_hold_up_others(server: ServerThread) -> None:
    silent = socket.create_connection(("127.0.0.1", server.port))
    half = Raw(server.port)
    half.send(b'{"op":"login","id":1,"user":"half')  # an unfinished frame

    async def others() -> None:
        a, b = await connect(server, "a"), await connect(server, "b")
        await a.send("hi", to=["b"])
        assert [m.text for m in await b.check()] == ["hi"]
        await a.close()
        await b.close()

    run(others())
    silent.close()


def test_server_memory_stays_bounded_under_abuse(server_process: Any, tmp_path: Path) -> None:
    process = server_process("--auth", "none", "--no-limits")
    baseline = process.rss_kib()
    abuse = [b"z" * (16 * 1024 * 1024)] * 3 + [
        b"[[[[[[" * 10_000 + b"\n" + b"\xff" * 60_000 + b"\n"
    ] * 20
    for data in abuse:
        raw = Raw(process.port)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            raw.send(data)
            raw.sock.shutdown(socket.SHUT_WR)
        # the server has dealt with everything sent once it hangs up
        assert raw.closed_within(10)
        raw.sock.close()
    assert process.rss_kib() < baseline + 64 * 1024
    alive = Raw(process.port)
    assert alive.request({"op": "ping", "id": 1})["pong"] is True


def test_pipelined_requests_are_answered_in_order(server: ServerThread) -> None:
    raw = Raw(server.port)
    raw.request({"op": "login", "id": 0, "user": "alice"})
    frames = [
        {"op": "send", "id": 1, "mode": "one", "to": ["alice"], "text": "first"},
        {"op": "send", "id": 2, "mode": "one", "to": ["nobody"], "text": "refused"},
        {"op": "send", "id": 3, "mode": "one", "to": ["alice"], "text": "second"},
        {"op": "check", "id": 4},
        {"op": "send", "id": 5, "mode": "one", "to": ["alice"], "text": "third"},
        {"op": "ping", "id": 6},
    ]
    raw.send(b"".join(json.dumps(frame).encode() + b"\n" for frame in frames))
    replies = [raw.read_reply() for _ in frames]
    assert [reply["id"] for reply in replies] == [1, 2, 3, 4, 5, 6]
    assert [reply["ok"] for reply in replies] == [True, False, True, True, True, True]
    assert replies[1]["error"] == "unknown_recipient"
    assert [m["text"] for m in replies[3]["messages"]] == ["first", "second"]  # sees earlier sends
    assert replies[0]["msg"] < replies[2]["msg"] < replies[4]["msg"]


def test_small_requests_for_large_replies_cannot_pile_up_in_server_memory(
    server_process: Any,
) -> None:
    process = server_process("--auth", "none", "--no-limits")

    async def many_users() -> None:
        for start in range(0, 500, 100):
            clients = await asyncio.gather(
                *(
                    connect(process.port, f"someone-with-a-long-name-{i:03}")
                    for i in range(start, start + 100)
                )
            )
            await asyncio.gather(*(c.close() for c in clients))

    run(many_users())
    baseline = process.rss_kib()
    sink = socket.create_connection(("127.0.0.1", process.port))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.sendall(b'{"op":"login","id":1,"user":"sink","presence":false}\n')
    request = b'{"op":"users"}\n'  # 15 bytes asking for about 25 KB
    with contextlib.suppress(TimeoutError, BlockingIOError):
        sink.settimeout(5)
        sink.sendall(request * 20_000)  # stops when the server stops reading
    time.sleep(1)
    # without the bound: +110 MB after a second, and growing
    assert process.rss_kib() < baseline + 64 * 1024
    bystander = Raw(process.port)
    assert bystander.request({"op": "ping", "id": 1})["pong"] is True
    sink.close()
