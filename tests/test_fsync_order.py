"""Every acknowledgement leaves the socket after the fsync that makes its message durable.

A SIGKILL test cannot show this: the page cache survives a killed process, so a server
that acknowledged before fsync would pass it. Here the real server runs under strace, and
the trace is checked: for every acknowledged message, the WAL write that holds its text is
followed by an fsync of the WAL file, and only then is the acknowledgement sent (B1).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from mailslot.client import Client
from tests.conftest import run, server_command

SYSCALL = re.compile(r"^\d+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\((\d+|AT_FDCWD)?)")


def _strace() -> str:
    path = shutil.which("strace")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("strace is not installed (CI installs it through apt-get)")
        pytest.skip("strace is not installed (apt install strace)")
    return path


def test_acknowledgements_follow_the_fsync_of_their_commit(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                _strace(),
                "-f",
                "-qq",
                "-s",
                "10000",
                "-e",
                "trace=openat,pwrite64,write,fsync,fdatasync,sendto",
                "-o",
                str(trace),
                *server_command(tmp_path / "data", "--auth", "none"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        port = _port(log, server)
        acked = run(_send_many(port))
    finally:
        for traced in psutil.Process(server.pid).children():  # stop the server, not strace
            traced.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert len(acked) == 120
    _check_order(trace.read_text(errors="replace").splitlines(), acked)


def _port(log: Path, server: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"Mailslot listening on [\d.]+:(\d+)", log.read_text())
        if found:
            return int(found.group(1))
        assert server.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError("the traced server did not start:\n" + log.read_text())


async def _send_many(port: int) -> dict[int, str]:
    """120 messages from three senders, some pipelined; their ids and texts."""
    alice = await Client.connect("127.0.0.1", port)
    await alice.login("alice")
    senders = []
    for name in ("bob", "carol", "dave"):
        client = await Client.connect("127.0.0.1", port)
        await client.login(name)
        senders.append(client)
    acked: dict[int, str] = {}

    async def burst(client: Client, tag: str) -> None:
        for round_ in range(8):
            texts = [f"probe-{tag}-{round_}-{i}-durable" for i in range(5)]
            results = await asyncio.gather(*(client.send(t, to=["alice"]) for t in texts))
            acked.update({r.id: t for r, t in zip(results, texts, strict=True)})

    await asyncio.gather(*(burst(c, c.user or "") for c in senders))
    for client in [alice, *senders]:
        await client.close()
    return acked


def _check_order(lines: list[str], acked: dict[int, str]) -> None:
    wal_fds: set[str] = set()
    written_at: dict[str, int] = {}  # message text -> line of the first WAL write holding it
    synced: list[int] = []  # lines where an fsync of the WAL completed
    pending_sync: dict[str, str] = {}  # pid -> fd of an fsync not yet finished
    acked_at: dict[int, int] = {}
    texts = set(acked.values())
    for number, line in enumerate(lines):
        found = SYSCALL.match(line)
        if not found:
            continue
        pid = line.split(None, 1)[0]
        resumed, call, fd = found.groups()
        if call == "openat" and '-wal"' in line and "= " in line:
            wal_fds.add(line.rsplit("= ", 1)[1].split()[0])
        elif call == "pwrite64" and fd in wal_fds:
            for text in texts - written_at.keys():
                if text in line:
                    written_at[text] = number
        elif call in ("fsync", "fdatasync") and fd in wal_fds:
            if "<unfinished ...>" in line:
                pending_sync[pid] = fd
            elif "= 0" in line:
                synced.append(number)
        elif resumed in ("fsync", "fdatasync") and pid in pending_sync:
            del pending_sync[pid]
            if "= 0" in line:
                synced.append(number)
        elif call in ("sendto", "write") and '\\"ok\\":true,\\"msg\\":' in line:
            for match in re.finditer(r'\\"msg\\":(\d+)', line):
                acked_at.setdefault(int(match.group(1)), number)
    assert wal_fds, "the trace shows no WAL file"
    assert set(acked_at) == set(acked), "every acknowledgement is in the trace"
    for message_id, text in acked.items():
        assert text in written_at, f"message {message_id} never reached the WAL"
        write = written_at[text]
        sync = next((s for s in synced if s > write), None)
        assert sync is not None, f"message {message_id} was never fsync'd"
        assert sync < acked_at[message_id], (
            f"message {message_id} was acknowledged (trace line {acked_at[message_id]}) "
            f"before the fsync of its commit (line {sync})"
        )
