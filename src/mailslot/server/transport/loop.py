"""The event loop `mailslot server` runs on: uvloop when it is installed
(`pip install 'mailslot[uvloop]'`) and the server does not speak TLS; asyncio's own
otherwise, or when MAILSLOT_EVENT_LOOP=asyncio asks for it. uvloop's transports are
written in C, which takes a share of the loop's time per connection and per read off
the server (docs/benchmarks.md, "Session core on asyncio.Protocol").

TLS stays on asyncio's loop: the server starts TLS per connection (transport/tcp.py)
so that failed handshakes are logged, and uvloop starts reading a new connection
right after `connection_made`, so a client's hello could reach the plain protocol
before the handshake has begun."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], *, tls: bool) -> T:
    if not tls and os.environ.get("MAILSLOT_EVENT_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)
