"""The event loop `mailslot server` runs on: uvloop when it is installed
(`pip install 'mailslot[uvloop]'`), asyncio's own otherwise or when
MAILSLOT_EVENT_LOOP=asyncio asks for it. Both run the same transports; uvloop's
are written in C, which takes a share of the loop's time per connection and per
read off the server (docs/benchmarks.md, "Session core on asyncio.Protocol")."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    if os.environ.get("MAILSLOT_EVENT_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)
