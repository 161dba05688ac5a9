"""The async client: one connection, requests matched to replies by id, pushed events."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import ssl
from collections.abc import Callable, Iterable, MutableSet, Sequence
from typing import Any, TypeVar

from mailslot.client.errors import (
    ConnectError,
    ConnectionLost,
    MailslotError,
    error_from_reply,
)
from mailslot.client.models import (
    Disconnected,
    Event,
    LoginResult,
    Message,
    SendResult,
    ServerInfo,
    UserInfo,
    event_from_push,
)
from mailslot.protocol import (
    CLIENT_MAX_FRAME,
    EVENT_NAMES,
    MAX_ACK_IDS,
    AckOk,
    ByeOk,
    CheckOk,
    ClosingEvent,
    ErrorReply,
    FrameHead,
    FrameTooLarge,
    LineSplitter,
    LoginOk,
    PasswdOk,
    PingOk,
    QueuedMessage,
    SendOk,
    UsersOk,
    WelcomeEvent,
    decode_as,
    decode_event,
    encode,
    parse_time,
)

EventListener = Callable[[Event], None]
R = TypeVar("R")

MAX_QUEUED_EVENTS = 10_000

_CLOSING_REASONS = {
    "shutdown": "the server shut down",
    "idle": "the connection was idle too long",
    "login_timeout": "the client did not log in in time",
    "account_deleted": "the server's operator deleted this user",
    "slow_consumer": "the client did not read fast enough",
    "too_large": "a request was too large",
    "malformed": "too many malformed requests",
    "unavailable": "the server lost its connection to the cluster's database",
}


class Client:
    """Use `await Client.connect(host, port)`; every method may raise MailslotError."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        server_info: ServerInfo,
        splitter: LineSplitter,
        seen_ids: MutableSet[int] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.server_info = server_info
        self.user: str | None = None
        self._splitter = splitter
        self._ids = itertools.count(1)
        # each request's future, and the type its reply decodes to
        self._pending: dict[int, tuple[type[Any], asyncio.Future[Any]]] = {}
        self._listeners: list[EventListener] = []
        self._events: asyncio.Queue[Event] = asyncio.Queue(MAX_QUEUED_EVENTS)
        # Message ids already handed to the application, so redelivery after a lost
        # acknowledgement shows nothing twice; share the set across reconnects.
        self._seen: MutableSet[int] = seen_ids if seen_ids is not None else set()
        self._unacked_duplicates: set[int] = set()
        self._closed_reason: str | None = None
        self._reader_task = asyncio.create_task(self._read_loop(), name="mailslot-client-reader")

    # -- connection ----------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        seen_ids: MutableSet[int] | None = None,
    ) -> Client:
        where = f"{host}:{port}"
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ssl_context, limit=CLIENT_MAX_FRAME),
                timeout,
            )
        except TimeoutError:
            raise ConnectError(f"the server at {where} did not answer in time") from None
        except ssl.SSLCertVerificationError as error:
            raise ConnectError(
                f"TLS with {where} failed: the certificate of {host!r} cannot be trusted"
                f" ({error.verify_message})"
            ) from None
        except ssl.SSLError as error:
            if error.reason in _NOT_TLS_REASONS:
                raise ConnectError(
                    f"the server at {where} does not use TLS: leave out --tls and --ca-file"
                ) from None
            raise ConnectError(f"TLS with {where} failed: {error.reason or error}") from None
        except OSError as error:
            raise ConnectError(f"cannot reach the server at {where}: {_why(error)}") from None
        if ssl_context is None:
            # A blank line is ignored by a Mailslot server, but a TLS server takes it for a
            # broken handshake and answers with an alert or hangs up: then say so at once.
            writer.write(b"\r\n" * 4)
        splitter = LineSplitter(CLIENT_MAX_FRAME)
        try:
            welcome = await asyncio.wait_for(
                _first_frame(reader, splitter, probed=ssl_context is None), timeout
            )
        except _ExpectsTLS as error:
            writer.close()
            raise ConnectError(f"the server at {where} {error}: add --tls") from None
        except TimeoutError:
            writer.close()
            raise ConnectError(
                f"{where} accepted the connection but sent no Mailslot greeting within"
                f" {timeout:g} seconds; is it a Mailslot server?"
            ) from None
        except (OSError, ValueError, FrameTooLarge) as error:
            writer.close()
            raise ConnectError(f"{where} does not speak the Mailslot protocol ({error})") from None
        try:
            info = _server_info(welcome)
        except MailslotError:
            writer.close()
            raise
        except ValueError as error:
            writer.close()
            raise ConnectError(f"{where} does not speak the Mailslot protocol ({error})") from None
        except _NotWelcome:
            writer.close()
            raise ConnectError(f"{where} does not speak the Mailslot protocol") from None
        return cls(reader, writer, info, splitter, seen_ids)

    @classmethod
    async def connect_first(
        cls,
        addresses: Sequence[tuple[str, int]],
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        seen_ids: MutableSet[int] | None = None,
    ) -> Client:
        """The first server of the list that answers, tried in order (several nodes of
        one service); ConnectError naming each failure when none does."""
        failures: list[ConnectError] = []
        for host, port in addresses:
            try:
                return await cls.connect(
                    host, port, ssl_context=ssl_context, timeout=timeout, seen_ids=seen_ids
                )
            except ConnectError as error:
                failures.append(error)
        if len(failures) == 1:
            raise failures[0]
        raise ConnectError(
            f"none of the {len(failures)} servers answered: "
            + "; ".join(str(failure) for failure in failures)
        )

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    async def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(MailslotError, OSError):
                await asyncio.wait_for(self._request({"op": "bye"}, ByeOk), 2)
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        self._reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader_task
        self._shut("closed")

    # -- requests ----------------------------------------------------------------------

    async def login(
        self, user: str, password: str | None = None, *, presence: bool = True
    ) -> LoginResult:
        frame: dict[str, Any] = {"op": "login", "user": user}
        if password is not None:
            frame["password"] = password
        if not presence:
            frame["presence"] = False
        reply = await self._request(frame, LoginOk)
        self.user = reply.user
        return LoginResult(reply.user, reply.created, reply.waiting)

    async def users(self) -> list[UserInfo]:
        reply = await self._request({"op": "users"}, UsersOk)
        return [UserInfo(u.name, u.online) for u in reply.users]

    async def send(
        self, text: str, *, to: Iterable[str] = (), everyone: bool = False, many: bool = False
    ) -> SendResult:
        """To everyone, or to the names in `to` (mode "many" when more than one, or `many`)."""
        names = list(to)
        if everyone:
            frame: dict[str, Any] = {"op": "send", "mode": "all", "text": text}
        else:
            mode = "many" if many or len(names) != 1 else "one"
            frame = {"op": "send", "mode": mode, "to": names, "text": text}
        reply = await self._request(frame, SendOk)
        return SendResult(reply.msg, parse_time(reply.at), reply.recipients)

    async def fetch(self) -> list[Message]:
        """Every waiting message not yet handed out by this client, oldest first.

        Nothing is deleted on the server until `ack`; call it once the messages are safe.
        """
        fresh: list[Message] = []
        after = 0
        while True:
            reply = await self._request({"op": "check", "after": after}, _CheckReply)
            for item in reply.messages:
                message = Message.from_wire(item)
                after = max(after, message.id)
                if message.id in self._seen:
                    self._unacked_duplicates.add(message.id)
                else:
                    self._seen.add(message.id)
                    fresh.append(message)
            if not reply.more:
                return fresh

    async def ack(self, ids: Iterable[int]) -> int:
        """Delete these messages on the server (and any redelivered duplicates)."""
        everything = list(dict.fromkeys([*ids, *self._unacked_duplicates]))
        deleted = 0
        for start in range(0, len(everything), MAX_ACK_IDS):
            chunk = everything[start : start + MAX_ACK_IDS]
            reply = await self._request({"op": "ack", "ids": chunk}, AckOk)
            self._unacked_duplicates.difference_update(chunk)
            deleted += reply.deleted
        return deleted

    async def check(self) -> list[Message]:
        """fetch() then ack(): the new messages, deleted on the server."""
        messages = await self.fetch()
        await self.ack(m.id for m in messages)
        return messages

    async def change_password(self, old: str, new: str) -> None:
        """Set a new password for the logged-in name; WrongPassword if `old` is wrong."""
        await self._request({"op": "passwd", "old": old, "new": new}, PasswdOk)

    async def ping(self) -> None:
        await self._request({"op": "ping"}, PingOk)

    # -- events ------------------------------------------------------------------------

    def add_listener(self, listener: EventListener) -> None:
        """Call `listener` for every push event, on the event loop's thread."""
        self._listeners.append(listener)

    async def next_event(self) -> Event:
        """The next push event; the newest MAX_QUEUED_EVENTS are kept until asked for."""
        return await self._events.get()

    def drain_events(self) -> list[Event]:
        """Every push event received and not yet taken, without waiting."""
        events = []
        while not self._events.empty():
            events.append(self._events.get_nowait())
        return events

    def _emit(self, event: Event) -> None:
        if self._events.full():
            self._events.get_nowait()
        self._events.put_nowait(event)
        for listener in self._listeners:
            listener(event)

    # -- plumbing ----------------------------------------------------------------------

    async def _request(self, frame: dict[str, Any], kind: type[R]) -> R:
        """Send a request and wait for its reply, decoded as `kind`; an error reply raises
        its MailslotError."""
        if self._closed_reason is not None:
            raise ConnectionLost(f"not connected: {self._closed_reason}")
        request_id = next(self._ids)
        frame["id"] = request_id
        future: asyncio.Future[R | ErrorReply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (kind, future)
        try:
            self._writer.write(encode(frame))
            await self._writer.drain()
            reply = await future
        except OSError as error:
            raise ConnectionLost(f"connection lost: {error}") from None
        finally:
            self._pending.pop(request_id, None)
        if isinstance(reply, ErrorReply):
            raise error_from_reply(reply)
        return reply

    async def _read_loop(self) -> None:
        reason = "the server closed the connection"
        try:
            while True:
                data = await self._reader.read(65_536)
                if not data:
                    break
                for line in self._splitter.feed(data):
                    reason = self._dispatch(line) or reason
        except (OSError, ssl.SSLError) as error:
            reason = f"connection lost: {error}"
        except (ValueError, FrameTooLarge) as error:
            reason = f"the server sent an unreadable frame: {error}"
            self._writer.close()
        self._shut(reason)

    def _dispatch(self, line: bytes) -> str | None:
        """Route one frame; returns the server's closing reason if it announced one.
        ValueError when the frame is not what the protocol allows there."""
        head = decode_as(line, FrameHead)
        if head.event is not None:
            if head.event not in EVENT_NAMES:
                return None  # an event of a later protocol version
            push = decode_event(line)
            if isinstance(push, ClosingEvent):
                code = push.reason
                return _CLOSING_REASONS.get(code, f"the server closed the connection ({code})")
            event = event_from_push(push)
            if event is not None:
                self._emit(event)
            return None
        if head.ok is None:
            raise ValueError("neither a reply nor an event")
        pending = self._pending.get(head.id) if head.id is not None else None
        if pending is None or pending[1].done():
            if head.ok is False:
                # An error without a request: the server is about to hang up (e.g. too_large).
                error = decode_as(line, ErrorReply)
                return error.message or "the server refused the connection"
            return None  # the reply to a request given up on (close() waits only so long)
        kind, future = pending
        future.set_result(decode_as(line, kind if head.ok else ErrorReply))
        return None

    def _shut(self, reason: str) -> None:
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionLost(reason))
        self._emit(Disconnected(reason))


_CheckReply = CheckOk[QueuedMessage]

# What OpenSSL says when the peer answers a ClientHello with something that is not TLS.
_NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"}
)


class _ExpectsTLS(Exception):
    pass


def _is_tls_record(data: bytes) -> bool:
    """A TLS alert or handshake record: content type 21 or 22, then version 3.x."""
    return len(data) >= 2 and data[0] in (0x15, 0x16) and data[1] == 0x03


async def _first_frame(
    reader: asyncio.StreamReader, splitter: LineSplitter, *, probed: bool
) -> bytes:
    """The greeting. `probed`: a plain-text probe was sent, so a TLS server has answered it
    with an alert, or hung up on it (a Mailslot server always greets first)."""
    first = True
    while True:
        data = await reader.read(65_536)
        if first and probed and not data:
            raise _ExpectsTLS("hung up without a greeting, so it probably expects TLS")
        if first and _is_tls_record(data):
            raise _ExpectsTLS("expects TLS")
        if not data:
            raise ConnectionResetError("closed before greeting")
        first = False
        lines = splitter.feed(data)
        if lines:
            if len(lines) > 1:
                raise ValueError("unexpected frames before the greeting")
            return lines[0]


class _NotWelcome(Exception):
    pass


def _server_info(greeting: bytes) -> ServerInfo:
    """What the greeting says of the server. The error reply a refusing server greets with
    raises its MailslotError; a frame that is no `welcome` raises _NotWelcome; a `welcome`
    that is not of the protocol's shape raises ValueError saying why."""
    head = decode_as(greeting, FrameHead)
    if head.ok is False:
        raise error_from_reply(decode_as(greeting, ErrorReply))
    if head.event != "welcome":
        raise _NotWelcome
    try:
        welcome = decode_as(greeting, WelcomeEvent)
    except ValueError as error:
        # msgspec names the faulty path in its sentence ("... `$.limits.max_text`")
        if "limits" in str(error):
            raise ValueError("the greeting does not state the server's limits") from None
        raise
    return ServerInfo.from_welcome(welcome)


def _why(error: OSError) -> str:
    """A connection failure as a short human reason, not the socket call that failed."""
    if isinstance(error, ConnectionRefusedError):
        return "nothing is listening there (connection refused)"
    if isinstance(error, socket.gaierror):
        return "the host name is unknown"
    if isinstance(error, TimeoutError):
        return "no answer"
    return (error.strerror or str(error)).rstrip(".").lower()
