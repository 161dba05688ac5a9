"""What every system under test provides, and the workload parameters."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import PhaseRun
from bench.procs import ServerProc


@dataclass
class Params:
    users: int = 1000  # W1/W2 recipients
    messages: int = 100_000  # W1 messages
    senders: int = 4  # W1 sender connections (one process each)
    window: int = 256  # outstanding requests per sender connection
    procs: int = 4  # generator processes for drains, logins, connections
    conc: int = 16  # concurrent sessions per generator process (drain/setup/W4)
    bc_users: int = 10_000  # W3 recipients
    bc_messages: int = 10  # W3 broadcasts
    conns: int = 10_000  # W4 concurrent idle clients
    rate: int = 5000  # W5 offered load, messages/s
    lat_seconds: float = 5.0  # W5 duration
    lat_senders: int = 4  # W5 sender connections
    check_rate: int = 100  # W5 checks/s on a separate connection
    w6_users: int = 10_000  # W6/W6p recipients (u10000..), drained by W7
    w6_conns: int = 1_000  # W6/W6p sender connections (over `procs` processes)
    w6_messages: int = 30_000  # W6 messages
    w6p_messages: int = 64_000  # W6p messages (4 windows of 16 per connection)
    w6_inflight: int = 16  # W6p sends in flight per connection (W6: 1)
    push_users: int = 1_000  # XPUSH recipients, logged in on the second node
    push_rate: int = 1_000  # XPUSH offered load, messages/s (each recipient: push_rate/push_users)
    push_seconds: float = 5.0  # XPUSH duration
    timeout: float = 300.0  # bound of every phase
    seed: int = 1


class Unsupported(Exception):
    """Raised by :meth:`System.start` when this system cannot run here (the reason)."""


class System:
    """A server under test. Subclasses implement the phases with their own protocol."""

    name = "?"
    label = "?"
    ack_meaning = "?"
    broadcast_note = ""
    conn_note = ""
    check_note = ""
    unsupported: str | None = None  # reason this system cannot run here

    def __init__(self, workdir: Path, params: Params) -> None:
        self.workdir = workdir
        self.p = params
        self.server: ServerProc | None = None

    # lifecycle -----------------------------------------------------------
    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> int | None:
        return self.server.stop() if self.server else None

    def version(self) -> str:
        return "?"

    def phases(self, asked: tuple[str, ...]) -> tuple[str, ...]:
        """The asked phases this system runs (all of them, unless it says otherwise)."""
        return asked

    def more_phases(self, phases: tuple[str, ...], out: Result) -> None:
        """Phases of this system's own, after the common ones; figures into ``out``."""
        return None

    # phases (each returns a PhaseRun; results carry per-generator payloads) --
    def setup_users(self, users: list[int]) -> PhaseRun:
        raise NotImplementedError

    def store(self, plan: list[int]) -> PhaseRun:
        """W1: results[i]["acked"] = list of acknowledged seqs."""
        raise NotImplementedError

    def drain(self, users: list[int], expected: dict[int, int]) -> PhaseRun:
        """W2/W3 drain: results[i]["got"] = list of (user index, text)."""
        raise NotImplementedError

    def leftover(self, users: list[int]) -> int:
        """Messages still queued for ``users`` after a drain (not timed)."""
        raise NotImplementedError

    def bcast_setup(self, users: list[int]) -> PhaseRun:
        raise NotImplementedError

    def bcast_send(self, seqs: list[int]) -> PhaseRun:
        """W3: results[0]["lat_ms"] (per broadcast), ["recipients"], ["acked"]."""
        raise NotImplementedError

    def bcast_recipients(self, users: list[int]) -> list[int]:
        """Indices of the users a broadcast reaches (drained and verified)."""
        return users

    def connections(self, n: int) -> PhaseRun:
        """W4: results[i]["connected"], ["login_s"]."""
        raise NotImplementedError

    def latency(self, users: list[int]) -> PhaseRun:
        """W5: results[i]["lat_ms"] (send→ack), ["check_ms"], ["sent"], ["acked"]."""
        raise NotImplementedError

    def closed_loop(self, items: list[tuple[int, int]], inflight: int) -> PhaseRun:
        """W6/W6p: ``w6_conns`` connections send (seq, recipient) ``items``, ``inflight``
        outstanding per connection, each request in its own write.

        results[i]["acked"] (seqs), ["lat_ms"] (send→ack), ["n_errors"].
        """
        raise NotImplementedError

    def login_drain(self, users: list[int], expected: dict[int, int]) -> PhaseRun:
        """W7: each user connects, logs in, checks, acks and leaves, on its own connection.

        As :meth:`drain`, plus results[i]["login_ms"] (connect → logged in) and
        ["session_ms"] (connect → everything acknowledged).
        """
        return self.drain(users, expected)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


def now() -> float:
    return time.monotonic()


def schedule(rate: float, seconds: float, share: int, parts: int) -> list[float]:
    """Offsets (s) at which sender ``share`` of ``parts`` sends, for a fixed total rate."""
    total = int(rate * seconds)
    return [i / rate for i in range(share, total, parts)]


Result = dict[str, Any]
