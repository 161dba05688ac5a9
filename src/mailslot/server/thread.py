"""A server running in a background thread, for the dashboard, the demo and tests."""

from __future__ import annotations

import asyncio
import threading

from mailslot.server.config import ServerConfig
from mailslot.server.core import MailslotServer, ServerSnapshot


class ServerThread:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._server: MailslotServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="mailslot-server", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def server(self) -> MailslotServer:
        assert self._server is not None, "start() first"
        return self._server

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> ServerThread:
        """Returns once the server listens; raises what kept it from starting."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self._loop is not None and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout)
        self._thread.join(timeout)

    def snapshot(self, timeout: float = 5.0) -> ServerSnapshot:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(self._snapshot(), self._loop).result(timeout)

    async def _snapshot(self) -> ServerSnapshot:
        return self.server.snapshot()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._server = MailslotServer(self.config)
            await self._server.start()
        except BaseException as error:
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        await self._server.serve_forever()
