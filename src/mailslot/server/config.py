"""Server settings: where to listen, where to keep data, and the limits (B8)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mailslot.protocol import DEFAULT_MAX_FRAME, DEFAULT_PORT


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "mailslot" / "server"


@dataclass(frozen=True)
class Limits:
    max_frame: int = DEFAULT_MAX_FRAME
    max_text: int = 1000
    max_recipients: int = 100
    max_batch: int = 200
    rate_per_second: float = 50.0  # requests per connection; 0 disables
    rate_burst: int = 200
    max_connections: int = 10_000
    idle_timeout: float = 600.0  # seconds without a whole frame from the client
    login_timeout: float = 10.0  # seconds from connect to a successful login
    max_anonymous_per_source: int = 32  # connections not logged in, per source address; 0: any
    max_output_buffer: int = 1024 * 1024  # bytes queued for one client
    write_timeout: float = 60.0  # seconds a client may leave replies unread before it is dropped
    login_failures: int = 5  # wrong passwords per name and source address per minute
    login_failures_per_source: int = 30  # wrong passwords per source address per minute; 0: any
    new_users_per_source: int = 60  # new names per source address per hour; 0: any

    @classmethod
    def unlimited(cls) -> Limits:
        """For benchmarks: no request rate, many connections from one address."""
        return cls(
            rate_per_second=0,
            max_connections=100_000,
            max_output_buffer=16 * 1024 * 1024,
            login_timeout=120.0,
            max_anonymous_per_source=0,
            login_failures_per_source=0,
            new_users_per_source=0,
        )


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = field(default_factory=default_data_dir)
    auth: Literal["password", "none"] = "password"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    limits: Limits = field(default_factory=Limits)

    @property
    def database(self) -> Path:
        return self.data_dir / "mailslot.sqlite3"


class StartupError(Exception):
    """The server cannot start; str() is one sentence saying why, for the operator."""
