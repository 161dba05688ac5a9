"""Request rates, wrong-password and new-name throttles keyed by source address (B2, B8, B13),
and log lines summarised per source so that an attack cannot flood the log."""

from __future__ import annotations

import functools
import ipaddress
import logging
import time
from collections import Counter, deque
from collections.abc import Hashable


@functools.lru_cache(maxsize=4096)  # parsed once per address, not once per connection
def source_of(host: str) -> str:
    """The address a throttle counts by: the IPv4 address, or the /64 an IPv6 host sits in
    (one machine is handed a whole /64, so counting single v6 addresses counts nothing)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class TokenBucket:
    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self, cost: float = 1) -> float:
        """0 when the request may go ahead (taking `cost` tokens), else the seconds to wait.
        A cost above the burst goes ahead when the bucket is full."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        cost = min(cost, self._burst)
        if self._tokens >= cost:
            self._tokens -= cost
            return 0.0
        return (cost - self._tokens) / self._rate

    @property
    def full(self) -> bool:
        return self._tokens + (time.monotonic() - self._stamp) * self._rate >= self._burst


class FailureWindow:
    """After `limit` failures for one key within `window` seconds, refuse that key until
    the oldest failure leaves the window. A limit of 0 never refuses."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self._limit = limit
        self._window = window
        self._failures: dict[Hashable, deque[float]] = {}

    def retry_after(self, key: Hashable) -> float:
        failures = self._failures.get(key)
        if not failures or not self._limit:
            return 0.0
        now = time.monotonic()
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return 0.0
        if len(failures) < self._limit:
            return 0.0
        return failures[0] + self._window - now

    def failed(self, key: Hashable) -> None:
        if self._limit:
            self._failures.setdefault(key, deque()).append(time.monotonic())

    def succeeded(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def prune(self) -> None:
        """Forget keys whose failures have all left the window (bounded memory)."""
        horizon = time.monotonic() - self._window
        for key in [k for k, f in self._failures.items() if not f or f[-1] <= horizon]:
            del self._failures[key]


class SourceBuckets:
    """One token bucket per source address: `per_hour` events, all at once if need be.
    A limit of 0 never refuses."""

    def __init__(self, per_hour: int) -> None:
        self._per_hour = per_hour
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, source: str) -> float:
        if not self._per_hour:
            return 0.0
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = self._buckets[source] = TokenBucket(self._per_hour / 3600, self._per_hour)
        return bucket.take()

    def prune(self) -> None:
        for source in [s for s, bucket in self._buckets.items() if bucket.full]:
            del self._buckets[source]


class RepeatLog:
    """Refusals logged one line per source per interval: the first at once, the rest as a
    count by reason when the interval ends (`flush`, called periodically)."""

    def __init__(self, log: logging.Logger, what: str, interval: float = 60.0) -> None:
        self._log = log
        self._what = what
        self._interval = interval
        self._since: dict[str, float] = {}
        self._counts: dict[str, Counter[str]] = {}

    def refused(self, source: str, reason: str, detail: str) -> None:
        """Log `detail` now unless `source` was logged within the interval; count it."""
        if source not in self._since:
            self._since[source] = time.monotonic()
            self._log.info("%s", detail)
            return
        self._counts.setdefault(source, Counter())[reason] += 1

    def flush(self, force: bool = False) -> None:
        horizon = time.monotonic() - self._interval
        for source in [s for s, since in self._since.items() if force or since <= horizon]:
            del self._since[source]
            counts = self._counts.pop(source, None)
            if counts:
                reasons = ", ".join(f"{reason} ×{n}" for reason, n in counts.most_common())
                self._log.info(
                    "%d more %s from %s in the last %.0f s (%s)",
                    counts.total(),
                    self._what,
                    source,
                    self._interval,
                    reasons,
                )


class LoginThrottles:
    """Wrong passwords counted per (source, name) and per source, and new names per
    source (B13); in a cluster every node counts every node's failures."""

    def __init__(self, per_name: int, per_source: int, new_users_per_hour: int) -> None:
        self.by_name = FailureWindow(per_name)
        self.by_source = FailureWindow(per_source)
        self.new_users = SourceBuckets(new_users_per_hour)

    def retry_after(self, source: str, key: str) -> float:
        return max(self.by_name.retry_after((source, key)), self.by_source.retry_after(source))

    def failed(self, source: str, key: str) -> None:
        self.by_name.failed((source, key))
        self.by_source.failed(source)

    def succeeded(self, source: str, key: str) -> None:
        self.by_name.succeeded((source, key))

    def prune(self) -> None:
        self.by_name.prune()
        self.by_source.prune()
        self.new_users.prune()
