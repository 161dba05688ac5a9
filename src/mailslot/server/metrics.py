"""Counters of what the server does.

The server counts with plain int attributes and Counters (one increment where the
event happens, no locks, no metric objects on the hot path); http.py turns them into
Prometheus metrics when /metrics is scraped, and imports prometheus_client only then.
"""

from __future__ import annotations

from collections import Counter

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
