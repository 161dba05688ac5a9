"""The floor (``bench/floor_server.py``) as a bench system: Mailslot's own load
generators against the least a Python server can do to answer them.

``python-floor`` keeps the queues in memory and acknowledges at once, as Mosquitto
does; ``python-floor-log`` appends every send and ack to a file and acknowledges
after its ``fdatasync`` (group commit), as Mailslot promises.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.base import Params
from bench.sys_mailslot import Mailslot


class PythonFloor(Mailslot):
    name = "python-floor"
    label = "Python floor: asyncio + uvloop + msgspec, queues in dicts, no store"
    ack_meaning = "received (memory)"
    conn_note = "TCP + `login`"

    def __init__(self, workdir: Path, params: Params, durable: bool = False) -> None:
        super().__init__(workdir, params)
        self.durable = durable
        if durable:
            self.name = "python-floor-log"
            self.label = "Python floor with an append-only log: one write + fdatasync per group"
            self.ack_meaning = "fdatasync'd (append-only file, group commit)"

    def version(self) -> str:
        return "bench/floor_server.py"

    def phases(self, asked: tuple[str, ...]) -> tuple[str, ...]:
        """No broadcasts: the floor knows 1-to-1 sends only."""
        return tuple(p for p in asked if p != "W3")

    def argv(self, port: int, data: Path) -> list[str]:
        data.mkdir(parents=True, exist_ok=True)
        log = ["--log", str(data)] if self.durable else []
        return [
            sys.executable,
            str(Path(__file__).with_name("floor_server.py")),
            "--port",
            str(port),
            *log,
        ]
