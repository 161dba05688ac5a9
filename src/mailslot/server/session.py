"""One client connection's session core: frames in, replies and pushes out, no I/O.

A transport (server/transport/tcp.py for TCP and TLS, server/ws.py for WebSocket)
feeds the core the complete frames of each arrival and writes what the core hands to
its `Output`. The core answers in the callback that brought the frames: a send, a
check, an ack or a ping never waits and never needs a task. Store jobs go to the
store at once; their replies are written when their futures complete, always in
request order (a reply waiting for a commit holds back the replies after it), so a
client that pipelines many sends gets them committed together.

The few requests that must wait for something other than the store (a login: the
password hash runs in a thread, the hub may look further; `passwd`; a send to a name
this node has not seen yet) run as a task, and the core takes no further request of
that connection until it is done: order is part of the protocol.

Everything queued for a client is bounded (B8, B13): the core stops taking requests
(and the transport stops reading) while the output is above a high-water mark or
REPLIES_BEFORE_DRAIN replies are unwritten, and after a `check` or `users` until its
reply is written; a client that reads nothing for `write_timeout` seconds meanwhile
is dropped. A `check` reply holds at most a fixed number of bytes, and pushes, which
cannot wait, drop a client whose output exceeds the bound (`slow_consumer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

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
from mailslot.protocol.replies import (
    AckOk,
    ByeOk,
    CheckOk,
    ClosingEvent,
    HelloOk,
    LoginOk,
    MailEvent,
    PasswdOk,
    PingOk,
    QueuedMessage,
    SendOk,
    UserEntry,
    UsersOk,
    WelcomeEvent,
    WelcomeLimits,
)
from mailslot.server import routing
from mailslot.server.config import Limits
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
WRITE_HIGH_WATER = 64 * 1024  # above this, the session stops taking requests

_encode_raw = msgspec.json.Encoder().encode


class Output(Protocol):
    """What a session core needs from its transport."""

    def write(self, data: bytes) -> None:
        """Queue one or more newline-terminated frames."""
        ...

    def buffered(self) -> int:
        """Bytes queued and not yet taken by the peer."""
        ...

    def closing(self) -> bool: ...

    def close(self) -> None:
        """Close once what is queued has been sent."""
        ...

    def abort(self) -> None:
        """Close now, dropping what is queued."""
        ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def notify_writable(self) -> None:
        """Call the session's `writable()` once the peer has taken most of what was
        queued (at once if it already has)."""
        ...


@functools.lru_cache(maxsize=8)
def _welcome(software: str, auth: str, limits: Limits) -> bytes:
    """The first frame of every connection, encoded once."""
    return encode(
        WelcomeEvent(
            server=software,
            versions=list(PROTOCOL_VERSIONS),
            auth=auth,
            limits=WelcomeLimits(
                max_frame=limits.max_frame,
                max_text=limits.max_text,
                max_recipients=limits.max_recipients,
                max_batch=limits.max_batch,
            ),
        )
    )


class _Slot:
    """One place in the reply order: its bytes once known, and the requests it
    answers (to refuse them all if the store fails)."""

    __slots__ = ("data", "request_ids")

    def __init__(self, request_ids: list[int | None], data: bytes | None = None) -> None:
        self.request_ids = request_ids
        self.data = data

    def fail(self, error: BaseException) -> None:
        code, sentence = _store_failure(error)
        self.data = b"".join(error_frame(i, code, sentence) for i in self.request_ids)


def _store_failure(error: BaseException) -> tuple[ErrorCode, str]:
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
    """Consecutive sends taken together, handed to the store as one job. They arrived
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
    def __init__(self, context: SessionContext, output: Output, peer: str, source: str) -> None:
        self.context = context
        self.hub = context.hub
        self.output = output
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
        self._inbox: deque[bytes] = deque()  # frames received and not taken yet
        self._slots: deque[_Slot] = deque()  # replies not written yet, in request order
        self._task: asyncio.Task[None] | None = None  # the request being awaited
        self._held = False  # until every reply is written (after a check, or too many)
        self._write_timer: asyncio.TimerHandle | None = None  # waiting for the peer to read
        self._reading = True
        self._eof = False
        self._too_large: FrameTooLarge | None = None
        self._close_when_written = False
        self._lost = False
        self._finished = False

    # -- what the transport calls ------------------------------------------------

    def start(self) -> None:
        """The connection is admitted: count it and greet the client."""
        self.context.connections.opened(self)
        self.push(_welcome(self.context.software, self.context.auth, self._limits))

    def receive(self, frames: list[bytes]) -> None:
        """The complete frames of one arrival."""
        if frames and self.close_reason is None:
            self.last_activity = time.monotonic()  # idle time counts whole frames only
            self._inbox.extend(frames)
            self._advance()

    def frame_too_large(self, error: FrameTooLarge) -> None:
        """A frame over the bound: the frames before it are answered, then the client
        is told and the connection closed. The transport feeds nothing more."""
        self._too_large = error
        self._inbox.extend(error.frames)
        self._advance()

    def eof(self) -> None:
        """The client will send nothing more; what it sent is still answered."""
        self._eof = True
        self._advance()

    def lost(self, error: BaseException | None) -> None:
        """The connection is gone (closed by either side, or broken)."""
        if self.close_reason is None:
            self.close_reason = (
                f"connection lost ({error.__class__.__name__})"
                if error is not None
                else "closed by client"
            )
        self._lost = True
        self._inbox.clear()
        self._stop_write_timer()
        if self._task is None:
            self._finish()

    def writable(self) -> None:
        """The peer has read most of what was queued (see Output.notify_writable)."""
        if self._write_timer is not None:
            self._stop_write_timer()
            self._advance()

    # -- output ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if data and not self.output.closing():
            self.output.write(data)

    def push(self, frame: bytes) -> None:
        """An event for this client; a client that lets events pile up is dropped (B8)."""
        output = self.output
        if output.closing():
            return
        if output.buffered() + len(frame) > self._limits.max_output_buffer:
            self._drop_slow_consumer()
            return
        output.write(frame)

    def close(self, reason: str | None = None) -> None:
        if reason is not None:
            self.close_reason = reason
            self.write(encode(ClosingEvent(reason=reason)))
        self._inbox.clear()
        if not self.output.closing():
            self.output.close()

    def abort(self) -> None:
        self.output.abort()

    def _drop_slow_consumer(self) -> None:
        self.close_reason = CloseReason.SLOW_CONSUMER
        self._inbox.clear()
        self.context.metrics.slow_consumer_drops += 1
        self.context.slow_consumer_log.refused(
            self.source,
            "slow_consumer",
            f"dropping {self.peer}: it left over {self._limits.max_output_buffer} bytes unread",
        )
        self.output.abort()

    # -- the order of things -------------------------------------------------------

    def _advance(self) -> None:
        """Write what replies are due, take what requests may be taken now, and decide
        whether to read on; called whenever something may have changed."""
        self._write_due()
        while self._inbox and self._may_take():
            self._take_requests()
            self._write_due()
        if self._lost:
            return
        if self._task is None and not self._inbox and self.close_reason is None:
            if self._too_large is not None:
                error = self._too_large
                frame = error_frame(None, ErrorCode.TOO_LARGE, str(error), max=error.limit)
                self._slot([], frame)
                self._end(CloseReason.TOO_LARGE)
                self._write_due()
            elif self._eof:
                self.close_reason = "closed by client"
                self._close_when_written = True
                self._write_due()
        reading = not self._inbox and self._write_timer is None
        if reading != self._reading:
            self._reading = reading
            if reading:
                self.output.resume_reading()
            else:
                self.output.pause_reading()

    def _may_take(self) -> bool:
        return (
            self.close_reason is None
            and self._task is None
            and not self._held
            and self._write_timer is None
        )

    def _take_requests(self) -> None:
        if self.output.buffered() > WRITE_HIGH_WATER:
            self._wait_writable()
            return
        # Nothing below writes to this client: one look at its output does for the lot.
        inbox = self._inbox
        received_at = 0
        sends: _Sends | None = None
        while inbox and self._may_take():
            request = decode_request(inbox.popleft())
            if type(request) is not Send:
                if sends is not None:
                    self._store_sends(sends)
                    sends = None
                self._take(request)
                continue
            received_at = received_at or now_micros()
            prepared = self._take_send(request, received_at)
            if isinstance(prepared, tuple):
                recipients, message = prepared
                if sends is None:
                    sends = _Sends(received_at)
                elif sends.rows + len(recipients) > ROWS_PER_COMMIT:
                    # one job at most what the store commits at once, so that one
                    # sender's pipelined burst cannot hog a commit
                    self._store_sends(sends)
                    sends = _Sends(received_at)
                sends.add(request.id, recipients, message)
                continue
            if sends is not None:
                self._store_sends(sends)
                sends = None
            if prepared is None:  # the hub must look for new users first
                self._run(self._send_caught_up(request, received_at, self._slot([request.id])))
            else:
                self._slot([request.id], prepared)
        if sends is not None:
            self._store_sends(sends)

    def _take(self, request: Request | BadFrame) -> None:
        """Answer one request that is not a send (or put its answer in the order)."""
        if isinstance(request, BadFrame):
            self._malformed_in_a_row += 1
            self._slot([request.id], error_frame(request.id, request.code, request.message))
            if self._malformed_in_a_row >= MAX_MALFORMED_IN_A_ROW:
                self._end(CloseReason.MALFORMED)
            return
        self._malformed_in_a_row = 0
        if isinstance(request, Login | Passwd):
            try:
                self._admit(request)
            except Refusal as refusal:
                self._slot([request.id], refusal.frame(request.id))
                return
            self._run(self._answer_later(request, self._slot([request.id])))
            return
        self._handle(request)
        if isinstance(request, Bye):
            self._inbox.clear()
            self._close_when_written = True
        elif isinstance(request, Check | Users) or len(self._slots) >= REPLIES_BEFORE_DRAIN:
            # A few bytes of request can ask for a large reply: take nothing more until
            # the client has read what is due, so that a client that never reads cannot
            # pile up replies in server memory.
            self._held = True

    def _slot(self, request_ids: list[int | None], data: bytes | None = None) -> _Slot:
        slot = _Slot(request_ids, data)
        self._slots.append(slot)
        return slot

    def _write_due(self) -> None:
        """Write the replies whose turn has come, in one write."""
        slots = self._slots
        if slots and slots[0].data is not None:
            first = slots.popleft().data
            assert first is not None
            if slots and slots[0].data is not None:
                due = [first]
                while slots and slots[0].data is not None:
                    data = slots.popleft().data
                    assert data is not None
                    due.append(data)
                first = b"".join(due)
            self.write(first)
        if slots:
            return
        if self._close_when_written:
            self._close_when_written = False
            self.close()
        elif self._held:
            self._held = False
            if self.output.buffered() > WRITE_HIGH_WATER:
                self._wait_writable()

    def _end(self, reason: CloseReason) -> None:
        """Close, with the closing event, once the replies before it are written."""
        self.close_reason = reason
        self._inbox.clear()
        self._slot([], encode(ClosingEvent(reason=reason)))
        self._close_when_written = True

    def _wait_writable(self) -> None:
        """Take nothing more until the client reads; drop it as a slow consumer if it
        reads nothing for `write_timeout` seconds."""
        self._write_timer = asyncio.get_running_loop().call_later(
            self._limits.write_timeout, self._write_timed_out
        )
        self.output.notify_writable()

    def _write_timed_out(self) -> None:
        self._write_timer = None
        self._drop_slow_consumer()

    def _stop_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _run(self, job: Coroutine[Any, Any, None]) -> None:
        """Await something for one request; later requests wait until it is done."""
        self._task = asyncio.get_running_loop().create_task(job)

    def _job_done(self) -> None:
        self._task = None
        if self._lost:
            self._write_due()
            self._finish()
        else:
            self._advance()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self.user is not None:
            self.hub.logged_out(self.user, self)
        self.context.connections.closed(self)

    def _await(
        self, slot: _Slot, future: asyncio.Future[Any], finish: Callable[[Any], bytes]
    ) -> None:
        """Fill the slot from the store's future once it completes."""

        def done(future: asyncio.Future[Any]) -> None:
            try:
                slot.data = finish(future.result())
            except (Exception, asyncio.CancelledError) as error:
                log.error("store failure for %s: %s", self.peer, error)
                slot.fail(error)
            self._advance()

        future.add_done_callback(done)

    # -- requests that wait ----------------------------------------------------------

    async def _answer_later(self, request: Login | Passwd, slot: _Slot) -> None:
        try:
            if isinstance(request, Login):
                slot.data = await self._login(request)
            else:
                slot.data = await self._passwd(request)
        except Exception as error:
            slot.data = self._failure(request, error)
        finally:
            self._job_done()

    async def _send_caught_up(self, request: Send, received_at: int, slot: _Slot) -> None:
        try:
            # Without the cluster's database the names known here must do.
            with contextlib.suppress(StoreError):
                await self.hub.catch_up()
            prepared = self._take_send(request, received_at, caught_up=True)
            assert prepared is not None
            if isinstance(prepared, bytes):
                slot.data = prepared
            else:
                sends = _Sends(received_at)
                sends.add(request.id, *prepared)
                self._store_sends(sends, slot)
        except Exception as error:
            slot.data = self._failure(request, error)
        finally:
            self._job_done()

    # -- requests ----------------------------------------------------------------

    def _handle(self, request: Request) -> None:
        """Answer a request that needs no waiting but maybe the store's; never raises."""
        try:
            self._admit(request)
            reply = _HANDLERS[type(request)](self, request)
        except Exception as error:
            reply = self._failure(request, error)
        if isinstance(reply, bytes):
            self._slot([request.id], reply)

    def _failure(self, request: Request, error: Exception) -> bytes:
        """The reply to a request that raised."""
        if isinstance(error, Refusal):
            return error.frame(request.id)
        if isinstance(error, StoreError):
            log.error("store failure for %s: %s", self.peer, error)
            code, sentence = _store_failure(error)
            return error_frame(request.id, code, sentence)
        log.exception(
            "failed to handle %s from %s", type(request).__name__, self.peer, exc_info=error
        )
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

    def _admit(self, request: Request) -> None:
        if self._bucket is not None and not isinstance(request, Ping | Bye):
            wait = self._bucket.take()
            if wait:
                raise rate_limited("too many requests", wait)

    def _ping(self, request: Ping) -> bytes:
        return encode(PingOk(id=request.id))

    def _bye(self, request: Bye) -> bytes:
        self.close_reason = "bye"
        return encode(ByeOk(id=request.id))

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
        return encode(HelloOk(id=request.id, version=request.version))

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
        reply = encode(LoginOk(id=request.id, user=state.name, created=created, waiting=waiting))
        if waiting:
            reply += encode(MailEvent(waiting=waiting))
        return reply

    async def _passwd(self, request: Passwd) -> bytes:
        me = self._me()
        try:
            await self.context.accounts.change_password(me, request.old, request.new, self.source)
        except Refusal as refusal:
            self._rejected(refusal.code, me.name)
            raise
        return encode(PasswdOk(id=request.id))

    def _rejected(self, code: ErrorCode, name: str) -> None:
        context = self.context
        context.metrics.logins_refused[code] += 1
        context.refusal_log.refused(self.source, code, f"rejected {self.peer} as {name!r}: {code}")
        context.events.publish("rejected", user=name, peer=self.peer, detail=code)

    def _users(self, request: Users) -> bytes:
        self._me()
        users = [UserEntry(name=s.name, online=s.online) for s in self.hub.directory.sorted()]
        return encode(UsersOk(id=request.id, users=users))

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

    def _store_sends(self, sends: _Sends, slot: _Slot | None = None) -> None:
        """Hand sends to the store; their replies take the next place in the order,
        or `slot`."""
        if slot is None:
            slot = self._slot(sends.request_ids)
        me = self.user
        assert me is not None
        hub, events = self.hub, self.context.events

        def stored(future: asyncio.Future[list[int]]) -> None:
            try:
                message_ids = future.result()
            except (Exception, asyncio.CancelledError) as error:
                log.error("store failure for %s: %s", self.peer, error)
                slot.fail(error)
            else:
                # New mail is announced when it is in the queues, before the sender
                # hears back, whichever connection or node the recipients are on.
                for recipients in sends.recipients:
                    hub.delivered(recipients)
                    if events.watched:
                        events.publish("enqueued", user=me.name, count=len(recipients))
                at = format_time(sends.at)
                slot.data = b"".join(
                    encode(SendOk(id=request_id, msg=message_id, at=at, recipients=len(recipients)))
                    for request_id, recipients, message_id in zip(
                        sends.request_ids, sends.recipients, message_ids, strict=True
                    )
                )
            self._advance()

        try:
            self.context.store.enqueue(sends.messages).add_done_callback(stored)
        except Exception as error:
            log.error("store failure for %s: %s", self.peer, error)
            slot.fail(error)

    def _check(self, request: Check) -> None:
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
                    QueuedMessage(
                        id=m.id, sender=m.sender, at=format_time(m.received_at), text=m.text
                    )
                )
                if parts and size + len(part) > CHECK_REPLY_BYTES:
                    more = True
                    break
                parts.append(msgspec.Raw(part))
                size += len(part)
            self.context.metrics.fetched += len(parts)
            return encode(
                CheckOk[msgspec.Raw](id=request.id, messages=parts, more=more, none=not parts)
            )

        future = self.context.store.fetch(me.record.id, limit, request.after)
        self._await(self._slot([request.id]), asyncio.ensure_future(future), fetched)

    def _ack(self, request: Ack) -> None:
        me = self._me()

        def deleted(count: int) -> bytes:
            self.hub.acknowledged(me, count)
            return encode(AckOk(id=request.id, deleted=count, waiting=me.waiting))

        ids = list(dict.fromkeys(request.ids))
        future = self.context.store.ack(me.record.id, ids)
        self._await(self._slot([request.id]), asyncio.ensure_future(future), deleted)


_HANDLERS: dict[type, Callable[[Session, Any], bytes | None]] = {
    Check: Session._check,
    Ack: Session._ack,
    Users: Session._users,
    Hello: Session._hello,
    Ping: Session._ping,
    Bye: Session._bye,
}
