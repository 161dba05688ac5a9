"""The HTTP side port (`--http-port`): /healthz, /readyz and /metrics, served by
aiohttp on the server's own event loop; the Prometheus view of server/metrics.py.

`build_app` makes the aiohttp application; routes added to it later (a web
client over WebSocket) share the port, the loop and the server object.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from mailslot.server.metrics import errors_sent
from mailslot.server.webapp import add_web_routes
from mailslot.server.ws import websocket
from mailslot.store.base import CommitStats, Histogram

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
    app.router.add_get("/ws", ws)
    add_web_routes(app)
    return app


async def ws(request: web.Request) -> web.StreamResponse:
    """The protocol over WebSocket, one frame per message (server/ws.py)."""
    return await websocket(request, request.app[SERVER])


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready for clients: listening, in touch with the cluster (if any), and the store
    takes a write (one small commit)."""
    server = request.app[SERVER]
    problems = []
    if not server.listening:
        problems.append("not listening")
    trouble = server.hub.trouble()
    if trouble is not None:
        problems.append(trouble)
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


class MetricsCollector(Collector):
    """Reads the server's counters and live state at scrape time."""

    def __init__(self, server: MailslotServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        counts = server.metrics
        yield _gauge("mailslot_connections_open", "connections open now", len(server.sessions))
        yield _counter(
            "mailslot_connections_accepted", "connections accepted", counts.connections_accepted
        )
        yield _labelled(
            "mailslot_connections_refused",
            "connections refused",
            "reason",
            counts.connections_refused,
        )
        yield _counter("mailslot_logins_ok", "successful logins", counts.logins_ok)
        yield _labelled("mailslot_logins_refused", "refused logins", "code", counts.logins_refused)
        yield _labelled("mailslot_sends", "send requests accepted", "mode", counts.sends)
        yield _counter(
            "mailslot_messages_enqueued",
            "queue entries written (one per recipient)",
            counts.enqueued,
        )
        yield _counter(
            "mailslot_messages_delivered", "messages handed out by check", counts.fetched
        )
        yield _counter("mailslot_messages_acked", "queue entries deleted by ack", counts.acked)
        yield _counter(
            "mailslot_slow_consumer_drops",
            "clients dropped for not reading",
            counts.slow_consumer_drops,
        )
        yield _labelled("mailslot_errors", "error replies sent, by code", "code", errors_sent)
        states = server.directory.by_key.values()
        yield _gauge("mailslot_users_known", "names in the username log", len(server.directory))
        online = sum(1 for s in states if s.session is not None)
        yield _gauge("mailslot_users_online", "users logged in now", online)
        yield _gauge(
            "mailslot_queue_depth", "messages waiting in all queues", sum(s.waiting for s in states)
        )
        commits = getattr(server.store, "commits", None)
        if isinstance(commits, int):
            yield _counter(
                "mailslot_store_fsyncs",
                "store commits, each made durable with an fsync of the write-ahead log",
                commits,
            )
        stats = getattr(server.store, "commit_stats", None)
        if isinstance(stats, CommitStats):
            yield _histogram(
                "mailslot_store_commit_seconds", "time from BEGIN to COMMIT", stats.latency
            )
            yield _histogram(
                "mailslot_store_commit_jobs", "requests carried by one commit", stats.jobs
            )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _labelled(
    name: str, documentation: str, label: str, values: Counter[str]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([str(key)], value)
    return family


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(
        name, documentation, buckets=histogram.cumulative(), sum_value=histogram.total
    )


def build_registry(server: MailslotServer) -> CollectorRegistry:
    """A registry of this server's metrics and the process's (CPU, memory, open files)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(server))
    ProcessCollector(registry=registry)
    return registry


class SidePort:
    """The HTTP listener, started and stopped with the server."""

    def __init__(self, server: MailslotServer) -> None:
        self.server = server
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        runner = web.AppRunner(build_app(self.server), access_log=None, handle_signals=False)
        await runner.setup()
        # TLS with the server's own certificate (and its reloads, which change the context)
        site = web.TCPSite(
            runner, host, port, reuse_address=True, ssl_context=self.server.tls_context
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        log.info("HTTP side port on %s:%d (/healthz, /readyz, /metrics, /ws)", host, self.port)
        scheme = "https" if self.server.tls_context is not None else "http"
        shown = f"[{host}]" if ":" in host else host
        log.info("Web client: open %s://%s:%d/ in a browser", scheme, shown, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
