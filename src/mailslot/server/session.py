"""One client connection: its own task, its login, and its requests in order.

Requests are handled in arrival order. A request that needs the store hands
its job over at once and its reply is written when the job's commit is done,
so a client that pipelines many sends gets them committed together.

Everything queued for a client is bounded (B8, B13): replies are produced only
while the client reads them (the session stops reading requests while its
output is above a high-water mark), a `check` reply holds at most a fixed
number of bytes, and pushes, which cannot wait, drop a client whose output
exceeds the bound (`slow_consumer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from mailslot.protocol import (
    PROTOCOL_VERSIONS,
    Ack,
    BadFrame,
    Bye,
    Check,
    CloseReason,
    ErrorCode,
    FrameTooLarge,
    Hello,
    InvalidName,
    Login,
    Passwd,
    Ping,
    Request,
    Send,
    Users,
    decode_request,
    display_name,
    encode,
    format_time,
    name_key,
    now_micros,
)
from mailslot.server import routing
from mailslot.server.channel import WRITE_HIGH_WATER, Channel
from mailslot.server.context import SessionContext
from mailslot.server.directory import UserState
from mailslot.server.refusal import Refusal, error_frame, rate_limited
from mailslot.server.throttle import TokenBucket
from mailslot.store import Batch, NewMessage, StorageFull, StoreError, StoreUnavailable
from mailslot.store.batching import ROWS_PER_COMMIT

log = logging.getLogger("mailslot.server")

MAX_MALFORMED_IN_A_ROW = 10
REPLIES_BEFORE_DRAIN = 32
CHECK_REPLY_BYTES = 256 * 1024  # a check reply stops adding messages past this size

_encode_raw = msgspec.json.Encoder().encode


class _Pending:
    """A reply that waits for the store: the job's future, how to turn its result into
    the reply frames, and which requests to answer with an error if the store fails."""

    __slots__ = ("finish", "future", "request_ids")

    def __init__(
        self,
        request_ids: list[int | None],
        future: Awaitable[Any],
        finish: Callable[[Any], bytes],
    ) -> None:
        self.request_ids = request_ids
        self.future = future
        self.finish = finish

    def failed(self, error: Exception) -> bytes:
        code, sentence = _store_failure(error)
        return b"".join(error_frame(i, code, sentence) for i in self.request_ids)


def _store_failure(error: Exception) -> tuple[ErrorCode, str]:
    if isinstance(error, StorageFull):
        return ErrorCode.STORAGE_FULL, (
            "the server's disk is full; nothing was stored (checking and acknowledging "
            "messages still work)"
        )
    if isinstance(error, StoreUnavailable):
        return ErrorCode.UNAVAILABLE, (
            "the server cannot reach its storage right now; nothing was changed, try again later"
        )
    return ErrorCode.INTERNAL, "the server could not store this; nothing was changed"


class _CatchUp(Exception):
    """A send needs the users created on other nodes since the hub last looked."""


class _Sends:
    """Consecutive sends of one read, handed to the store as one job. They arrived
    together, so they share one reception time."""

    __slots__ = ("at", "messages", "recipients", "request_ids", "rows")

    def __init__(self, at: int) -> None:
        self.at = at
        self.request_ids: list[int | None] = []
        self.recipients: list[list[UserState]] = []
        self.messages: list[NewMessage] = []
        self.rows = 0

    def add(self, request_id: int | None, recipients: list[UserState], message: NewMessage) -> None:
        self.request_ids.append(request_id)
        self.recipients.append(recipients)
        self.messages.append(message)
        self.rows += len(recipients)


class Session:
    def __init__(self, context: SessionContext, channel: Channel, peer: str, source: str) -> None:
        self.context = context
        self.hub = context.hub
        self.channel = channel
        self.peer = peer
        self.source = source
        self.user: UserState | None = None
        self.presence = True
        self.connected_at = self.last_activity = time.monotonic()
        self.close_reason: str | None = None
        limits = context.limits
        self._limits = limits
        self._bucket = (
            TokenBucket(limits.rate_per_second, limits.rate_burst)
            if limits.rate_per_second > 0
            else None
        )
        self._malformed_in_a_row = 0

    # -- the connection's task -------------------------------------------------

    async def run(self) -> None:
        limits = self._limits
        self.push(
            encode(
                {
                    "event": "welcome",
                    "server": self.context.software,
                    "versions": list(PROTOCOL_VERSIONS),
                    "auth": self.context.auth,
                    "limits": {
                        "max_frame": limits.max_frame,
                        "max_text": limits.max_text,
                        "max_recipients": limits.max_recipients,
                        "max_batch": limits.max_batch,
                    },
                }
            )
        )
        try:
            while self.close_reason is None:
                too_large: FrameTooLarge | None = None
                try:
                    lines = await self.channel.read()
                except FrameTooLarge as error:
                    lines, too_large = error.frames, error
                if lines is None:
                    self.close_reason = self.close_reason or "closed by client"
                    break
                await self._answer(lines)
                if too_large is not None and self.close_reason is None:
                    limit = too_large.limit
                    self.write(error_frame(None, ErrorCode.TOO_LARGE, str(too_large), max=limit))
                    self.close(CloseReason.TOO_LARGE)
                    break
                await self._drain()
        except (ConnectionError, OSError) as error:
            self.close_reason = self.close_reason or f"connection lost ({error.__class__.__name__})"
        finally:
            if self.user is not None:
                self.hub.logged_out(self.user, self)
            self.context.connections.closed(self)
            if not self.channel.closing():
                self.channel.close()

    async def _answer(self, lines: list[bytes]) -> None:
        if not lines:
            return
        self.last_activity = time.monotonic()  # idle time counts whole frames only
        replies: list[bytes | _Pending] = []
        received_at = now_micros()
        sends = _Sends(received_at)  # consecutive sends: stored together, before later replies
        for line in lines:
            if self.close_reason is not None:
                break
            request = decode_request(line)
            refused: bytes | None = None
            if isinstance(request, Send):
                prepared = self._take_send(request, received_at)
                if prepared is None:
                    # Without the cluster's database the names known here must do.
                    with contextlib.suppress(StoreError):
                        await self.hub.catch_up()
                    prepared = self._take_send(request, received_at, caught_up=True)
                    assert prepared is not None
                if not isinstance(prepared, bytes):
                    recipients, message = prepared
                    # one job at most what the store commits at once, so that one
                    # sender's pipelined burst cannot hog a commit
                    if sends.messages and sends.rows + len(recipients) > ROWS_PER_COMMIT:
                        replies.append(self._store_sends(sends))
                        sends = _Sends(received_at)
                    sends.add(request.id, recipients, message)
                    continue
                refused = prepared
            if sends.messages:
                replies.append(self._store_sends(sends))
                sends = _Sends(received_at)
            if refused is not None:
                replies.append(refused)
                continue
            if isinstance(request, BadFrame):
                self._malformed_in_a_row += 1
                replies.append(error_frame(request.id, request.code, request.message))
                if self._malformed_in_a_row >= MAX_MALFORMED_IN_A_ROW:
                    await self._flush(replies)
                    self.close(CloseReason.MALFORMED)
                    return
                continue
            self._malformed_in_a_row = 0
            replies.append(await self._handle(request))
            if isinstance(request, Bye):
                break
            if isinstance(request, Check | Users) or len(replies) >= REPLIES_BEFORE_DRAIN:
                # A few bytes of request can ask for a large reply: write what is due and
                # wait for the client to read it before going on, so a client that never
                # reads cannot pile up replies in server memory.
                await self._flush(replies)
                replies = []
                await self._drain()
        if sends.messages:
            replies.append(self._store_sends(sends))
        await self._flush(replies)
        if self.close_reason == "bye":
            self.close()

    async def _handle(self, request: Request) -> bytes | _Pending:
        """The reply to one request (not a send); never raises."""
        try:
            self._admit(request)
            if isinstance(request, Login):
                return await self._login(request)
            if isinstance(request, Passwd):
                return await self._passwd(request)
            return _HANDLERS[type(request)](self, request)
        except Refusal as refusal:
            return refusal.frame(request.id)
        except StoreError as error:
            log.error("store failure for %s: %s", self.peer, error)
            code, sentence = _store_failure(error)
            return error_frame(request.id, code, sentence)
        except Exception:
            log.exception("failed to handle %s from %s", type(request).__name__, self.peer)
            message = "the server failed on this request; nothing was changed"
            return error_frame(request.id, ErrorCode.INTERNAL, message)

    def _take_send(
        self, request: Send, received_at: int, caught_up: bool = False
    ) -> tuple[list[UserState], NewMessage] | bytes | None:
        """A valid send's recipients and message, or the error reply that refuses it;
        None when the hub must first catch up with users created elsewhere."""
        self._malformed_in_a_row = 0
        try:
            if not caught_up:
                self._admit(request)
            return self._prepare_send(request, received_at, caught_up)
        except _CatchUp:
            return None
        except Refusal as refusal:
            return refusal.frame(request.id)
        except Exception:
            log.exception("failed to handle a send from %s", self.peer)
            return error_frame(request.id, ErrorCode.INTERNAL, "the server failed on this send")

    async def _flush(self, replies: list[bytes | _Pending]) -> None:
        """Write the replies in request order, each store-bound one once its commit is done."""
        ready: list[bytes] = []
        for reply in replies:
            if isinstance(reply, bytes):
                ready.append(reply)
                continue
            try:
                result = await reply.future
                ready.append(reply.finish(result))
            except Exception as error:
                log.error("store failure for %s: %s", self.peer, error)
                ready.append(reply.failed(error))
        self.write(b"".join(ready))

    async def _drain(self) -> None:
        """Wait until the client has read most of what it was sent; drop it as a slow
        consumer when it reads nothing for `write_timeout` seconds."""
        if self.channel.buffered() <= WRITE_HIGH_WATER:
            return
        try:
            await asyncio.wait_for(self.channel.drain(), self._limits.write_timeout)
        except TimeoutError:
            self._drop_slow_consumer()

    # -- output ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if data and not self.channel.closing():
            self.channel.write(data)

    def push(self, frame: bytes) -> None:
        """An event for this client; a client that lets events pile up is dropped (B8)."""
        if self.channel.closing():
            return
        if self.channel.buffered() + len(frame) > self._limits.max_output_buffer:
            self._drop_slow_consumer()
            return
        self.channel.write(frame)

    def _drop_slow_consumer(self) -> None:
        self.close_reason = CloseReason.SLOW_CONSUMER
        self.context.metrics.slow_consumer_drops += 1
        self.context.slow_consumer_log.refused(
            self.source,
            "slow_consumer",
            f"dropping {self.peer}: it left over {self._limits.max_output_buffer} bytes unread",
        )
        self.channel.abort()

    def close(self, reason: str | None = None) -> None:
        if reason is not None:
            self.close_reason = reason
            self.write(encode({"event": "closing", "reason": reason}))
        if not self.channel.closing():
            self.channel.close()

    # -- requests ----------------------------------------------------------------

    def _admit(self, request: Request) -> None:
        if self._bucket is not None and not isinstance(request, Ping | Bye):
            wait = self._bucket.take()
            if wait:
                raise rate_limited("too many requests", wait)

    def _ping(self, request: Ping) -> bytes:
        return encode({"id": request.id, "ok": True, "pong": True})

    def _bye(self, request: Bye) -> bytes:
        self.close_reason = "bye"
        return encode({"id": request.id, "ok": True, "bye": True})

    def _me(self) -> UserState:
        if self.user is None:
            raise Refusal(ErrorCode.NOT_LOGGED_IN, "log in first")
        return self.user

    def _hello(self, request: Hello) -> bytes:
        if request.version not in PROTOCOL_VERSIONS:
            raise Refusal(
                ErrorCode.UNSUPPORTED_VERSION,
                f"protocol version {request.version} is not supported",
                versions=list(PROTOCOL_VERSIONS),
            )
        return encode({"id": request.id, "ok": True, "version": request.version})

    async def _login(self, request: Login) -> bytes:
        hub, accounts = self.hub, self.context.accounts
        if self.user is not None:
            raise Refusal(ErrorCode.ALREADY_LOGGED_IN, f"already logged in as {self.user.name!r}")
        try:
            key = name_key(request.user)
            known = hub.directory.by_key.get(key)
            # New names meet today's rules; a name stored under older ones keeps working.
            name = known.name if known is not None else display_name(request.user)
        except InvalidName as error:
            self._rejected(ErrorCode.INVALID_USERNAME, request.user)
            raise Refusal(ErrorCode.INVALID_USERNAME, str(error)) from None
        try:
            accounts.throttle_check(key, name, self.source)
            if hub.claimed(key):
                raise Refusal(ErrorCode.USERNAME_IN_USE, f"username {name!r} is in use")
            hub.hold(key, self)  # across the awaits below, so that a racing login sees it
            try:
                state, created = await accounts.authenticate(
                    key, name, request.password, self.source
                )
                if not await hub.claim(state, self):  # logged in on another node
                    raise Refusal(ErrorCode.USERNAME_IN_USE, f"username {state.name!r} is in use")
            except BaseException:
                hub.unhold(key, self)
                raise
        except Refusal as refusal:
            self._rejected(refusal.code, name)
            raise
        # Logged in even if the client left meanwhile: leaving logs it out again.
        self.user = state
        self.presence = request.presence
        self.context.connections.left_anonymous(self.source)
        hub.logged_in(state, self, created)
        self.context.metrics.logins_ok += 1
        log.info("login %r from %s%s", state.name, self.peer, " (new user)" if created else "")
        self.context.events.publish("login", user=state.name, peer=self.peer)
        waiting = state.waiting
        reply = encode(
            {
                "id": request.id,
                "ok": True,
                "user": state.name,
                "created": created,
                "waiting": waiting,
            }
        )
        if waiting:
            reply += encode({"event": "mail", "waiting": waiting})
        return reply

    async def _passwd(self, request: Passwd) -> bytes:
        me = self._me()
        try:
            await self.context.accounts.change_password(me, request.old, request.new, self.source)
        except Refusal as refusal:
            self._rejected(refusal.code, me.name)
            raise
        return encode({"id": request.id, "ok": True})

    def _rejected(self, code: ErrorCode, name: str) -> None:
        context = self.context
        context.metrics.logins_refused[code] += 1
        context.refusal_log.refused(self.source, code, f"rejected {self.peer} as {name!r}: {code}")
        context.events.publish("rejected", user=name, peer=self.peer, detail=code)

    def _users(self, request: Users) -> bytes:
        self._me()
        users = [
            {"name": state.name, "online": state.online} for state in self.hub.directory.sorted()
        ]
        return encode({"id": request.id, "ok": True, "users": users})

    def _prepare_send(
        self, request: Send, received_at: int, caught_up: bool
    ) -> tuple[list[UserState], NewMessage]:
        me = self._me()
        limits = self._limits
        text = request.text
        if not text.strip():
            raise Refusal(ErrorCode.EMPTY_TEXT, "the message is empty")
        if len(text) > limits.max_text:
            raise Refusal(
                ErrorCode.TEXT_TOO_LONG,
                f"the message has {len(text)} characters; the limit is {limits.max_text}",
                max=limits.max_text,
            )
        if request.mode == "all" and not caught_up:
            raise _CatchUp()  # with the users other nodes created a moment ago
        try:
            recipients = routing.recipients(self.hub.directory, me, request, limits.max_recipients)
        except Refusal as refusal:
            if refusal.code == ErrorCode.UNKNOWN_RECIPIENT and not caught_up:
                raise _CatchUp() from None
            raise
        if limits.fanout_per_second:
            self._spend_fanout(me, len(recipients))
        self.context.metrics.sends[request.mode] += 1
        return recipients, NewMessage(me.name, [s.record.id for s in recipients], text, received_at)

    def _spend_fanout(self, me: UserState, places: int) -> None:
        """Each user fills at most so many queue places per second, whatever its
        connections: a burst of 1-to-all sends cannot take the store from everyone else."""
        limits = self._limits
        if me.fanout is None:
            me.fanout = TokenBucket(limits.fanout_per_second, limits.fanout_burst)
        wait = me.fanout.take(places)
        if wait:
            raise rate_limited("you have sent to many recipients in a short time", wait)

    def _store_sends(self, sends: _Sends) -> _Pending:
        me = self.user
        assert me is not None
        hub, events = self.hub, self.context.events

        def committed(future: asyncio.Future[list[int]]) -> None:
            # New mail is announced when it is in the queues, before the sender hears
            # back, whichever connection or node the recipients are on.
            if future.cancelled() or future.exception() is not None:
                return
            for recipients in sends.recipients:
                hub.delivered(recipients)
                if events.watched:
                    events.publish("enqueued", user=me.name, count=len(recipients))

        def stored(message_ids: list[int]) -> bytes:
            at = format_time(sends.at)
            return b"".join(
                encode(
                    {
                        "id": request_id,
                        "ok": True,
                        "msg": message_id,
                        "at": at,
                        "recipients": len(recipients),
                    }
                )
                for request_id, recipients, message_id in zip(
                    sends.request_ids, sends.recipients, message_ids, strict=True
                )
            )

        future = self.context.store.enqueue(sends.messages)
        future.add_done_callback(committed)
        return _Pending(sends.request_ids, future, stored)

    def _check(self, request: Check) -> _Pending:
        me = self._me()
        limit = self._limits.max_batch
        if request.limit is not None:
            limit = min(limit, request.limit)

        def fetched(batch: Batch) -> bytes:
            # Each message encoded once, and the reply cut at a byte budget, so that one
            # reply stays small whatever the texts hold; `more` tells the client to page on.
            parts: list[msgspec.Raw] = []
            size = 0
            more = batch.more
            for m in batch.messages:
                part = _encode_raw(
                    {"id": m.id, "from": m.sender, "at": format_time(m.received_at), "text": m.text}
                )
                if parts and size + len(part) > CHECK_REPLY_BYTES:
                    more = True
                    break
                parts.append(msgspec.Raw(part))
                size += len(part)
            self.context.metrics.fetched += len(parts)
            return encode(
                {"id": request.id, "ok": True, "messages": parts, "more": more, "none": not parts}
            )

        future = self.context.store.fetch(me.record.id, limit, request.after)
        return _Pending([request.id], future, fetched)

    def _ack(self, request: Ack) -> _Pending:
        me = self._me()

        def deleted(count: int) -> bytes:
            self.hub.acknowledged(me, count)
            return encode({"id": request.id, "ok": True, "deleted": count, "waiting": me.waiting})

        ids = list(dict.fromkeys(request.ids))
        return _Pending([request.id], self.context.store.ack(me.record.id, ids), deleted)


_HANDLERS: dict[type, Callable[[Session, Any], bytes | _Pending]] = {
    Check: Session._check,
    Ack: Session._ack,
    Users: Session._users,
    Hello: Session._hello,
    Ping: Session._ping,
    Bye: Session._bye,
}
