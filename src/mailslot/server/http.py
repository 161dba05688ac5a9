"""The HTTP side port (`--http-port`): /healthz, /readyz and /metrics, served by
aiohttp on the server's own event loop.

`build_app` makes the aiohttp application; routes added to it later (a web
client over WebSocket) share the port, the loop and the server object.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from mailslot.server.metrics import build_registry

if TYPE_CHECKING:
    from mailslot.server.core import MailslotServer

log = logging.getLogger("mailslot.http")

SERVER: web.AppKey[MailslotServer] = web.AppKey("server")
REGISTRY = web.AppKey("registry", CollectorRegistry)
READY_TIMEOUT = 5.0  # seconds the store may take to answer /readyz


def build_app(server: MailslotServer) -> web.Application:
    app = web.Application()
    app[SERVER] = server
    app[REGISTRY] = build_registry(server)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready for clients: listening, and the store takes a write (one small commit)."""
    server = request.app[SERVER]
    problems = []
    if not server.listening:
        problems.append("not listening")
    try:
        await asyncio.wait_for(server.store.check_writable(), READY_TIMEOUT)
    except TimeoutError:
        problems.append(f"the store did not answer within {READY_TIMEOUT:.0f} seconds")
    except Exception as error:
        problems.append(f"the store cannot write: {error}")
    if problems:
        return _json({"status": "unavailable", "problems": problems}, status=503)
    return _json({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def _json(body: dict[str, object], status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


class SidePort:
    """The HTTP listener, started and stopped with the server."""

    def __init__(self, server: MailslotServer) -> None:
        self.server = server
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        runner = web.AppRunner(build_app(self.server), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        log.info("HTTP side port on %s:%d (/healthz, /readyz, /metrics)", host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
