"""Replies and events as structs (mailslot.protocol.replies): they encode to the very bytes a
server sends, byte for byte, and the client reads them, or says clearly what is wrong."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mailslot.client import Client, ConnectError, ConnectionLost, MailslotError, UnknownRecipient
from mailslot.client.models import MailWaiting
from mailslot.protocol import (
    AckOk,
    ByeOk,
    CheckOk,
    ClosingEvent,
    ErrorCode,
    ErrorReply,
    FrameHead,
    HelloOk,
    LoginOk,
    MailEvent,
    NewUserEvent,
    OfflineEvent,
    OnlineEvent,
    PasswdOk,
    PingOk,
    QueuedMessage,
    SendOk,
    UserEntry,
    UsersOk,
    WelcomeEvent,
    WelcomeLimits,
    decode_as,
    decode_event,
    encode,
    replies,
)
from tests.conftest import ServerFactory, run

AT = "2026-11-25T12:00:00.123456Z"
NOTE = QueuedMessage(id=1, sender="alice", at=AT, text="a note to myself")

# Every struct with the bytes a server sends for it (docs/protocol.md's examples among them).
EXPECTED: list[tuple[msgspec.Struct, bytes]] = [
    (HelloOk(id=1, version=1), b'{"id":1,"ok":true,"version":1}'),
    (
        LoginOk(id=1, user="alice", created=True, waiting=0),
        b'{"id":1,"ok":true,"user":"alice","created":true,"waiting":0}',
    ),
    (
        UsersOk(id=5, users=[UserEntry(name="alice", online=True)]),
        b'{"id":5,"ok":true,"users":[{"name":"alice","online":true}]}',
    ),
    (
        SendOk(id=2, msg=1, at=AT, recipients=1),
        b'{"id":2,"ok":true,"msg":1,"at":"2026-11-25T12:00:00.123456Z","recipients":1}',
    ),
    (
        CheckOk(id=3, messages=[NOTE], more=False, none=False),
        b'{"id":3,"ok":true,"messages":[{"id":1,"from":"alice","at":"2026-11-25T12:00:00.123456Z",'
        b'"text":"a note to myself"}],"more":false,"none":false}',
    ),
    (
        CheckOk[QueuedMessage](id=3, messages=[], more=False, none=True),
        b'{"id":3,"ok":true,"messages":[],"more":false,"none":true}',
    ),
    (AckOk(id=4, deleted=1, waiting=0), b'{"id":4,"ok":true,"deleted":1,"waiting":0}'),
    (PasswdOk(id=6), b'{"id":6,"ok":true}'),
    (PingOk(id=7), b'{"id":7,"ok":true,"pong":true}'),
    (ByeOk(id=None), b'{"id":null,"ok":true,"bye":true}'),
    (
        ErrorReply(id=None, error=ErrorCode.MALFORMED, message="not JSON"),
        b'{"id":null,"ok":false,"error":"malformed","message":"not JSON"}',
    ),
    (
        ErrorReply(id=8, error=ErrorCode.TEXT_TOO_LONG, message="too long", max=1000),
        b'{"id":8,"ok":false,"error":"text_too_long","message":"too long","max":1000}',
    ),
    (
        ErrorReply(id=8, error=ErrorCode.RATE_LIMITED, message="wait", retry_after=0.25),
        b'{"id":8,"ok":false,"error":"rate_limited","message":"wait","retry_after":0.25}',
    ),
    (
        ErrorReply(id=8, error=ErrorCode.UNKNOWN_RECIPIENT, message="who", names=["x", "y"]),
        b'{"id":8,"ok":false,"error":"unknown_recipient","message":"who","names":["x","y"]}',
    ),
    (
        ErrorReply(id=8, error=ErrorCode.UNSUPPORTED_VERSION, message="no", versions=[1]),
        b'{"id":8,"ok":false,"error":"unsupported_version","message":"no","versions":[1]}',
    ),
    (
        ErrorReply(id=8, error=ErrorCode.CONFUSABLE_USERNAME, message="alike", like="alice"),
        b'{"id":8,"ok":false,"error":"confusable_username","message":"alike","like":"alice"}',
    ),
    (
        ErrorReply(id=8, error=ErrorCode.PASSWORD_REQUIRED, message="choose", new=False),
        b'{"id":8,"ok":false,"error":"password_required","message":"choose","new":false}',
    ),
    (
        WelcomeEvent(
            server="mailslot/0.1.0",
            versions=[1],
            auth="password",
            limits=WelcomeLimits(max_frame=65536, max_text=1000, max_recipients=100, max_batch=200),
        ),
        b'{"event":"welcome","server":"mailslot/0.1.0","versions":[1],"auth":"password",'
        b'"limits":{"max_frame":65536,"max_text":1000,"max_recipients":100,"max_batch":200}}',
    ),
    (MailEvent(waiting=3), b'{"event":"mail","waiting":3}'),
    (OnlineEvent(user="bob"), b'{"event":"online","user":"bob"}'),
    (OfflineEvent(user="bob"), b'{"event":"offline","user":"bob"}'),
    (NewUserEvent(user="bob"), b'{"event":"new_user","user":"bob"}'),
    (ClosingEvent(reason="shutdown"), b'{"event":"closing","reason":"shutdown"}'),
]

# Structs that are frames of their own (the rest sit inside them).
FRAME_TYPES = {
    value
    for name, value in vars(replies).items()
    if isinstance(value, type)
    and issubclass(value, msgspec.Struct)
    and not name.startswith("_")
    and value not in {FrameHead, UserEntry, QueuedMessage, WelcomeLimits}
}
ERROR_EXTRAS = set(ErrorReply.__struct_fields__) - {"id", "ok", "error", "message"}


def _kind(value: msgspec.Struct) -> Any:
    return CheckOk[QueuedMessage] if isinstance(value, CheckOk) else type(value)


@pytest.mark.parametrize(("value", "wire"), EXPECTED)
def test_each_struct_encodes_to_the_wire_bytes_and_back(value: msgspec.Struct, wire: bytes) -> None:
    assert encode(value) == wire + b"\n"
    assert decode_as(wire, _kind(value)) == value
    if "event" in msgspec.json.decode(wire):
        assert decode_event(wire) == value


def test_the_table_covers_every_struct_and_every_extra_field_of_an_error() -> None:
    assert {type(value) for value, _ in EXPECTED} == FRAME_TYPES
    set_extras = {
        name for value, _ in EXPECTED if isinstance(value, ErrorReply) for name in value.extra
    }
    assert set_extras == ERROR_EXTRAS


def test_messages_encoded_once_as_raw_make_the_same_check_reply() -> None:
    part = msgspec.Raw(msgspec.json.encode(NOTE))
    by_parts = CheckOk(id=3, messages=[part], more=True, none=False)
    assert encode(by_parts) == encode(CheckOk(id=3, messages=[NOTE], more=True, none=False))


def test_the_documented_nc_session_is_what_the_structs_encode() -> None:
    """Every server line of the transcript at the top of docs/protocol.md, byte for byte."""
    doc = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text()
    transcript = doc.split("```console\n", 1)[1].split("```", 1)[0].splitlines()[1:]
    reply_kinds = {"login": LoginOk, "send": SendOk, "check": CheckOk[QueuedMessage], "ack": AckOk}
    op = ""
    checked = 0
    for line in (text.encode() for text in transcript):
        if line.startswith(b'{"op"'):
            op = msgspec.json.decode(line)["op"]
            continue
        value = (
            decode_event(line) if line.startswith(b'{"event"') else decode_as(line, reply_kinds[op])
        )
        assert encode(value) == line + b"\n"
        checked += 1
    assert checked == 5


# -- the bytes today's server sends --------------------------------------------------


class Wire:
    """A connection as nc sees it: the lines the server sends, as bytes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.file = self.sock.makefile("rb")
        self.events: list[bytes] = []
        self.welcome = self.line()

    def line(self) -> bytes:
        line = self.file.readline()
        assert line.endswith(b"\n"), "connection closed"
        return line.rstrip(b"\n")

    def reply(self, request: bytes) -> bytes:
        """The reply to a request; events that come first are kept in `events`."""
        self.sock.sendall(request + b"\n")
        return self.next_reply()

    def next_reply(self) -> bytes:
        while (line := self.line()).startswith(b'{"event"'):
            self.events.append(line)
        return line

    def event(self) -> bytes:
        if self.events:
            return self.events.pop(0)
        line = self.line()
        assert line.startswith(b'{"event"'), line
        return line


class Seen:
    """Server lines decoded into their structs, each of which must encode to the line."""

    def __init__(self) -> None:
        self.kinds: set[type] = set()
        self.extras: set[str] = set()

    def reply(self, line: bytes, kind: Any) -> Any:
        head = decode_as(line, FrameHead)
        value = decode_as(line, ErrorReply if head.ok is False else kind)
        assert encode(value) == line + b"\n", line
        self.kinds.add(type(value))
        if isinstance(value, ErrorReply):
            self.extras |= value.extra.keys()
        return value

    def error(self, line: bytes, code: ErrorCode) -> ErrorReply:
        value = self.reply(line, ErrorReply)
        assert isinstance(value, ErrorReply) and value.error == code, line
        return value

    def event(self, line: bytes, kind: type) -> Any:
        value = decode_event(line)
        assert isinstance(value, kind), line
        assert encode(value) == line + b"\n", line
        self.kinds.add(kind)
        return value


def test_every_reply_and_event_a_server_sends_is_a_struct_that_encodes_to_its_bytes(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    server = start_server("password", max_text=20, max_recipients=2)
    seen = Seen()
    alice = Wire(server.port)
    assert seen.event(alice.welcome, WelcomeEvent).limits.max_text == 20
    seen.reply(alice.reply(b'{"op":"hello","id":1,"version":1}'), HelloOk)
    hello = alice.reply(b'{"op":"hello","id":2,"version":9}')
    assert seen.error(hello, ErrorCode.UNSUPPORTED_VERSION).versions == [1]
    password = alice.reply(b'{"op":"login","id":3,"user":"alice"}')
    assert seen.error(password, ErrorCode.PASSWORD_REQUIRED).new is True
    login = alice.reply(b'{"op":"login","id":4,"user":"alice","password":"pw"}')
    assert seen.reply(login, LoginOk).created is True
    seen.reply(alice.reply(b'{"op":"passwd","id":5,"old":"pw","new":"pw2"}'), PasswdOk)
    seen.reply(alice.reply(b'{"op":"ping","id":6}'), PingOk)

    bob = Wire(server.port)
    seen.reply(bob.reply(b'{"op":"login","id":1,"user":"bob","password":"b"}'), LoginOk)
    assert seen.event(alice.event(), NewUserEvent).user == "bob"
    assert seen.event(alice.event(), OnlineEvent).user == "bob"
    look_alike = Wire(server.port)
    confusable = look_alike.reply(b'{"op":"login","id":1,"user":"aIice","password":"x"}')
    assert seen.error(confusable, ErrorCode.CONFUSABLE_USERNAME).like == "alice"

    users = seen.reply(alice.reply(b'{"op":"users","id":7}'), UsersOk)
    assert [(u.name, u.online) for u in users.users] == [("alice", True), ("bob", True)]
    send = b'{"op":"send","id":8,"mode":"one","to":["bob"],"text":"hi"}'
    assert seen.reply(alice.reply(send), SendOk).recipients == 1
    assert seen.event(bob.event(), MailEvent).waiting == 1
    unknown = alice.reply(b'{"op":"send","id":9,"mode":"one","to":["nobody"],"text":"hi"}')
    assert seen.error(unknown, ErrorCode.UNKNOWN_RECIPIENT).names == ["nobody"]
    long = alice.reply(b'{"op":"send","id":10,"mode":"one","to":["bob"],"text":"%s"}' % (b"x" * 21))
    assert seen.error(long, ErrorCode.TEXT_TOO_LONG).max == 20
    many = b'{"op":"send","id":11,"mode":"many","to":["bob","alice","carol"],"text":"hi"}'
    assert seen.error(alice.reply(many), ErrorCode.TOO_MANY_RECIPIENTS).max == 2
    assert seen.error(alice.reply(b"garbage"), ErrorCode.MALFORMED).id is None

    check = seen.reply(bob.reply(b'{"op":"check","id":2}'), CheckOk[QueuedMessage])
    assert [(m.sender, m.text) for m in check.messages] == [("alice", "hi")]
    ack = b'{"op":"ack","id":3,"ids":[%d]}' % check.messages[0].id
    assert seen.reply(bob.reply(ack), AckOk).deleted == 1
    assert seen.reply(bob.reply(b'{"op":"check","id":4}'), CheckOk[QueuedMessage]).none is True
    seen.reply(bob.reply(b'{"op":"bye","id":5}'), ByeOk)
    assert seen.event(alice.event(), OfflineEvent).user == "bob"

    strict = start_server(data_dir=tmp_path / "strict", rate_per_second=0.001, rate_burst=1)
    limited = Wire(strict.port)
    seen.error(limited.reply(b'{"op":"users","id":1}'), ErrorCode.NOT_LOGGED_IN)
    retry = seen.error(limited.reply(b'{"op":"users","id":2}'), ErrorCode.RATE_LIMITED)
    assert isinstance(retry.retry_after, float) and retry.retry_after > 0
    too_large = limited.reply(b"x" * (strict.server.config.limits.max_frame + 1))
    assert seen.error(too_large, ErrorCode.TOO_LARGE).max == strict.server.config.limits.max_frame
    assert seen.event(limited.event(), ClosingEvent).reason == "too_large"

    assert seen.kinds == FRAME_TYPES
    assert seen.extras == ERROR_EXTRAS


# -- the client facing a server that breaks the protocol -------------------------------

WELCOME = (
    b'{"event":"welcome","server":"fake","versions":[1],"auth":"none",'
    b'"limits":{"max_frame":65536,"max_text":1000,"max_recipients":100,"max_batch":200}}\n'
)


@contextlib.asynccontextmanager
async def fake_server(answers: list[bytes], greeting: bytes = WELCOME) -> AsyncIterator[int]:
    """A server on 127.0.0.1 that greets, then answers each request with the next line."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        for answer in answers:
            while not (line := await reader.readline()).strip():
                if not line:
                    break
            writer.write(answer)
        await reader.read()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (b'{"id":1,"ok":true,"pong":"yes"}\n', "`$.pong`"),
        (b'{"id":1,"ok":"sure","pong":true}\n', "`$.ok`"),
        (b'{"id":1,"pong":true}\n', "neither a reply nor an event"),
        (b'{"id":1,"ok":false,"error":"internal"}\n', "required field `message`"),
        (b'{"event":"mail","waiting":"many"}\n', "`$.waiting`"),
        (b'{"event":"online"}\n', "required field `user`"),
        (b"[1, 2]\n", "Expected `object`, got `array`"),
        (b"{\n", "truncated"),
    ],
)
def test_a_reply_or_event_of_the_wrong_shape_ends_the_connection_with_a_sentence(
    answer: bytes, why: str
) -> None:
    async def scenario() -> None:
        async with fake_server([answer]) as port:
            client = await Client.connect("127.0.0.1", port)
            with pytest.raises(ConnectionLost) as lost:
                await client.ping()
            assert str(lost.value).startswith("the server sent an unreadable frame: ")
            assert why in str(lost.value)
            assert client.closed
            await client.close()

    run(scenario())


def test_unknown_events_and_fields_are_ignored() -> None:
    async def scenario() -> None:
        answers = [
            b'{"event":"weather","sky":"blue"}\n{"event":"mail","waiting":2,"urgent":true}\n'
            b'{"id":1,"ok":true,"pong":true,"server_time":1}\n',
            b'{"id":2,"ok":true,"bye":true}\n',
        ]
        async with fake_server(answers) as port:
            client = await Client.connect("127.0.0.1", port)
            await client.ping()
            assert client.drain_events() == [MailWaiting(2)]
            await client.close()

    run(scenario())


def test_error_replies_become_typed_exceptions_with_their_extra_fields() -> None:
    async def scenario() -> None:
        answers = [
            b'{"id":1,"ok":false,"error":"unknown_recipient","message":"unknown user \'x\'",'
            b'"names":["x"]}\n',
            b'{"id":2,"ok":false,"error":"a_later_code","message":"","max":3,"hint":"h"}\n',
            b'{"id":3,"ok":true,"bye":true}\n',
        ]
        async with fake_server(answers) as port:
            client = await Client.connect("127.0.0.1", port)
            with pytest.raises(UnknownRecipient) as unknown:
                await client.send("hi", to=["x"])
            assert unknown.value.names == ["x"] and str(unknown.value) == "unknown user 'x'"
            with pytest.raises(MailslotError) as later:
                await client.ping()
            assert type(later.value) is MailslotError
            assert str(later.value) == "a later code" and later.value.extra == {"max": 3}
            await client.close()

    run(scenario())


@pytest.mark.parametrize(
    ("greeting", "why"),
    [
        (b'{"event":"mail","waiting":1}\n', "does not speak the Mailslot protocol$"),
        (b'{"event":"welcome","limits":{"max_text":"x"}}\n', "does not state the server's limits"),
        (
            b'{"event":"welcome","versions":"1","limits":{}}\n',
            r"\(Expected `array`, got `str` - at `\$.versions`\)$",
        ),
        (b'{"id":null,"ok":false,"error":"server_busy"}\n', "required field `message`"),
    ],
)
def test_a_bad_greeting_is_a_connect_error(greeting: bytes, why: str) -> None:
    async def scenario() -> None:
        async with fake_server([], greeting) as port:
            with pytest.raises(ConnectError) as refused:
                await Client.connect("127.0.0.1", port)
            assert re.search(why, str(refused.value)), str(refused.value)

    run(scenario())
