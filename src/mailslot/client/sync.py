"""A thread-safe, blocking facade over the async client, for GUIs and scripts.

The event loop runs in a background thread; every call is handed to it. GUIs
that must never block use `submit()` and poll the returned future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableSet, Sequence
from typing import Any, TypeVar

from mailslot.client.aio import Client
from mailslot.client.models import Event, LoginResult, Message, SendResult, ServerInfo, UserInfo

T = TypeVar("T")


class SyncClient:
    def __init__(self, client: Client, loop: asyncio.AbstractEventLoop, thread: threading.Thread):
        self.client = client
        self._loop = loop
        self._thread = thread
        self.events: queue.Queue[Event] = queue.Queue()
        loop.call_soon_threadsafe(client.add_listener, self.events.put)

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        seen_ids: MutableSet[int] | None = None,
    ) -> SyncClient:
        return cls.connect_first(
            [(host, port)], ssl_context=ssl_context, timeout=timeout, seen_ids=seen_ids
        )

    @classmethod
    def connect_first(
        cls,
        addresses: Sequence[tuple[str, int]],
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        seen_ids: MutableSet[int] | None = None,
    ) -> SyncClient:
        """The first server of the list that answers (see Client.connect_first)."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="mailslot-client", daemon=True)
        thread.start()
        connecting = asyncio.run_coroutine_threadsafe(
            Client.connect_first(
                addresses, ssl_context=ssl_context, timeout=timeout, seen_ids=seen_ids
            ),
            loop,
        )
        try:
            client = connecting.result()
        except BaseException:
            _stop_loop(loop, thread)
            raise
        return cls(client, loop, thread)

    @property
    def server_info(self) -> ServerInfo:
        return self.client.server_info

    @property
    def closed(self) -> bool:
        return self.client.closed

    def submit(
        self, function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """Run `function(*args, **kwargs)` on the client's loop; never blocks."""

        async def call() -> T:
            return await function(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(call(), self._loop)

    def _call(self, function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        return self.submit(function, *args, **kwargs).result()

    def login(
        self, user: str, password: str | None = None, *, presence: bool = True
    ) -> LoginResult:
        return self._call(self.client.login, user, password, presence=presence)

    def users(self) -> list[UserInfo]:
        return self._call(self.client.users)

    def send(
        self, text: str, *, to: Iterable[str] = (), everyone: bool = False, many: bool = False
    ) -> SendResult:
        return self._call(self.client.send, text, to=list(to), everyone=everyone, many=many)

    def fetch(self) -> list[Message]:
        return self._call(self.client.fetch)

    def ack(self, ids: Iterable[int]) -> int:
        return self._call(self.client.ack, list(ids))

    def check(self) -> list[Message]:
        return self._call(self.client.check)

    def change_password(self, old: str, new: str) -> None:
        self._call(self.client.change_password, old, new)

    def ping(self) -> None:
        self._call(self.client.ping)

    def close(self) -> None:
        if self._thread.is_alive():
            try:
                self._call(self.client.close)
            finally:
                _stop_loop(self._loop, self._thread)


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    if not thread.is_alive():
        loop.close()
