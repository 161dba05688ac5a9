"""Counters of what the server does, and their Prometheus exposition.

The server counts with plain int attributes and Counters (one increment where the
event happens, no locks, no label lookups on the hot path); a custom collector turns
them into Prometheus metrics when /metrics is scraped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from mailslot.store.base import CommitStats, Histogram

if TYPE_CHECKING:
    from mailslot.server.core import MailslotServer

# Error replies by code, for the whole process: counted where every error frame is
# made (refusal.error_frame), which has no server at hand.
errors_sent: Counter[str] = Counter()


class ServerMetrics:
    """Totals since the server started; the server increments them in place."""

    def __init__(self) -> None:
        self.connections_accepted = 0
        self.connections_refused: Counter[str] = Counter()  # by reason
        self.logins_ok = 0
        self.logins_refused: Counter[str] = Counter()  # by error code
        self.sends: Counter[str] = Counter()  # by mode: one, many, all
        self.enqueued = 0  # queue entries written: one per recipient
        self.fetched = 0  # messages handed out in check replies
        self.acked = 0  # queue entries deleted by acks
        self.slow_consumer_drops = 0


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
