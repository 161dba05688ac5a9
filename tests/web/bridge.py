"""THROWAWAY until the server's own /ws lands: serves the web client and forwards
each WebSocket text message as one line to the real TCP server."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import WSMsgType, web

from mailslot.server.webapp import add_web_routes


class Bridge:
    def __init__(self, tcp_port: int) -> None:
        self.tcp_port = tcp_port
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    def start(self, port: int = 0) -> Bridge:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(port), self.loop).result(10)
        return self

    async def _start(self, port: int) -> None:
        app = web.Application()
        app.router.add_get("/ws", self.ws)
        add_web_routes(app)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        self.port = int(self.runner.addresses[0][1])

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.tcp_port)
        except OSError:
            await socket.close()
            return socket

        async def down() -> None:
            while line := await reader.readline():
                await socket.send_str(line.decode().rstrip("\n"))
            await socket.close()

        task = asyncio.ensure_future(down())
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                writer.write(message.data.encode() + b"\n")
        writer.close()
        task.cancel()
        return socket

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
