"""The floor: the least a Python server can do to answer Mailslot's wire protocol.

Not Mailslot, and not for use: a yardstick for issue 12's targets. It speaks just
enough of docs/protocol.md for the bench's workloads (the welcome, `login` with
any name, 1-to-1 `send`, `check`, `ack`, the `mail` event), on asyncio's
``Protocol`` and uvloop, decoding and encoding with msgspec as Mailslot does, and
holds the queues in dicts. No validation, limits, sessions, hub, logs or store.

``--log DIR`` adds the durability Mailslot promises, in its cheapest form: every
send and every ack is appended to one file by a writer thread, which writes the
whole group in one ``write`` and one ``fdatasync`` before it answers (group commit,
as Mailslot's SQLite store), waiting up to 1 ms for company while commits follow each
other closely (Mailslot's commit delay). Nothing reads the file back.

    python bench/floor_server.py --port 7000 [--log DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import msgspec

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
COMMIT_DELAY = 0.001  # seconds, as Mailslot's SQLite store ...
COMMIT_DELAY_WHEN_BUSY = 0.002  # ... when the last commit ended this recently
WELCOME = b'{"event":"welcome","server":"floor","versions":[1],"auth":"none"}\n'

Message = dict[str, Any]
Done = Callable[[], None]


class Log:
    """Group commit to an append-only file: ``append(record, done)`` from the event
    loop; ``done`` runs on the loop after the record's ``fdatasync``."""

    def __init__(self, directory: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.fd = os.open(directory / "floor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.loop = loop
        self.pending: list[tuple[bytes, Done]] = []
        self.wake = threading.Condition()
        threading.Thread(target=self._write, name="floor-log", daemon=True).start()

    def append(self, record: bytes, done: Done) -> None:
        with self.wake:
            self.pending.append((record, done))
            if len(self.pending) == 1:
                self.wake.notify()

    def _write(self) -> None:
        committed_at = -1.0
        while True:
            with self.wake:
                while not self.pending:
                    self.wake.wait()
            if time.monotonic() - committed_at < COMMIT_DELAY_WHEN_BUSY:
                time.sleep(COMMIT_DELAY)
            with self.wake:
                group, self.pending = self.pending, []
            os.write(self.fd, b"".join(record for record, _ in group))
            os.fdatasync(self.fd)
            committed_at = time.monotonic()
            self.loop.call_soon_threadsafe(_run_all, [done for _, done in group])


def _run_all(callbacks: list[Done]) -> None:
    for done in callbacks:
        done()


class Floor:
    def __init__(self, log: Log | None) -> None:
        self.log = log
        self.queues: dict[str, deque[Message]] = {}
        self.online: dict[str, FloorConnection] = {}
        self.last_id = 0

    def stamp(self) -> str:
        return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FloorConnection(asyncio.Protocol):
    def __init__(self, floor: Floor) -> None:
        self.floor = floor
        self.user = ""
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(WELCOME)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.user and self.floor.online.get(self.user) is self:
            del self.floor.online[self.user]

    def write(self, reply: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_encode(reply) + b"\n")

    def data_received(self, data: bytes) -> None:
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        for line in lines:
            if line:
                self.handle(_decode(line))

    def handle(self, request: dict[str, Any]) -> None:
        op, rid, floor = request["op"], request["id"], self.floor
        if op == "login":
            self.user = request["user"]
            queue = floor.queues.setdefault(self.user, deque())
            floor.online[self.user] = self
            self.write({"id": rid, "ok": True, "user": self.user, "waiting": len(queue)})
            if queue:
                self.write({"event": "mail", "waiting": len(queue)})
        elif op == "send":
            to = request["to"][0]
            floor.last_id += 1
            message = {"id": floor.last_id, "from": self.user, "at": floor.stamp()}
            message["text"] = request["text"]
            reply = {"id": rid, "ok": True, "msg": message["id"], "at": message["at"]}
            reply["recipients"] = 1

            def stored() -> None:
                queue = floor.queues.setdefault(to, deque())
                queue.append(message)
                self.write(reply)
                recipient = floor.online.get(to)
                if recipient is not None:
                    recipient.write({"event": "mail", "waiting": len(queue)})

            self.durably(b"S" + _encode([to, message]) + b"\n", stored)
        elif op == "check":
            queue = floor.queues.get(self.user, deque())
            limit = request.get("limit", 200)
            batch = [queue[i] for i in range(min(limit, len(queue)))]
            self.write({"id": rid, "ok": True, "messages": batch, "more": len(queue) > limit})
        elif op == "ack":
            ids = set(request["ids"])

            def deleted() -> None:
                queue = floor.queues.get(self.user, deque())
                kept = deque(m for m in queue if m["id"] not in ids)
                floor.queues[self.user] = kept
                self.write({"id": rid, "ok": True, "deleted": len(queue) - len(kept)})

            self.durably(b"A" + _encode([self.user, request["ids"]]) + b"\n", deleted)
        else:
            self.write({"id": rid, "ok": False, "error": "unknown_op"})

    def durably(self, record: bytes, done: Done) -> None:
        if self.floor.log is None:
            done()
        else:
            self.floor.log.append(record, done)


async def serve(port: int, log_dir: Path | None) -> None:
    loop = asyncio.get_running_loop()
    floor = Floor(Log(log_dir, loop) if log_dir is not None else None)
    server = await loop.create_server(lambda: FloorConnection(floor), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, help="append and fdatasync to DIR/floor.log")
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.port, args.log))


if __name__ == "__main__":
    main()
