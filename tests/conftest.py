"""Real servers on ephemeral ports with real SQLite files in temporary directories."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mailslot.client import Client
from mailslot.server import Limits, ServerConfig, ServerThread
from tests.postgres import postgres_url  # noqa: F401  (a fixture: a schema of its own)

T = TypeVar("T")


def run(coroutine: Awaitable[T]) -> T:
    async def main() -> T:
        return await coroutine

    return asyncio.run(main())


async def eventually(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Wait until ``condition()`` is true, re-checking as the event loop turns; ``timeout``
    only bounds a hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def eventually_async(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0
) -> None:
    """``eventually`` for a condition that has to talk to the server to find out."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def online(server: ServerThread, name: str) -> bool:
    """Whether the server counts ``name`` as connected now."""
    return any(user.online for user in server.snapshot().users if user.name == name)


def make_config(data_dir: Path, auth: str = "none", **limits: Any) -> ServerConfig:
    return ServerConfig(
        host="127.0.0.1",
        port=0,
        data_dir=data_dir,
        auth=auth,  # type: ignore[arg-type]
        limits=replace(Limits(), **limits),
    )


ServerFactory = Callable[..., ServerThread]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    started: list[ServerThread] = []

    def start(auth: str = "none", data_dir: Path | None = None, **limits: Any) -> ServerThread:
        config = make_config(data_dir or tmp_path / "data", auth, **limits)
        thread = ServerThread(config).start()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()


@pytest.fixture
def server(start_server: ServerFactory) -> ServerThread:
    return start_server()


async def connect(server: ServerThread | int, user: str | None = None, **kwargs: Any) -> Client:
    port = server if isinstance(server, int) else server.port
    client = await Client.connect("127.0.0.1", port, **kwargs)
    if user is not None:
        await client.login(user)
    return client


def server_command(data_dir: Path, *extra: str) -> list[str]:
    """`mailslot server --headless` on any free port, as a user would run it."""
    return [
        sys.executable,
        "-m",
        "mailslot",
        "server",
        "--headless",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        *extra,
    ]


class ServerProcess:
    """`mailslot server --headless` as a child process, as a user would run it."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                server_command(data_dir, *extra),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = re.search(r"Mailslot listening on [\d.]+:(\d+)", self.log_path.read_text())
            if found:
                self.port = int(found.group(1))
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("server did not start:\n" + self.log_path.read_text())

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        assert found
        return int(found.group(1))

    def stop(self, sig: int | None = None) -> str:
        if self.process.poll() is None:
            if sig is None:
                self.process.terminate()
            else:
                self.process.send_signal(sig)
        self.process.wait(timeout=20)
        return self.log_path.read_text()


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    processes: list[ServerProcess] = []

    def start(*extra: str, data_dir: Path | None = None) -> ServerProcess:
        process = ServerProcess(data_dir or tmp_path / "data", *extra)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.process.poll() is None:
            process.stop()


@contextlib.contextmanager
def tmpfs(mount_point: Path, options: str) -> Iterator[Path]:
    """A small tmpfs mounted for a test (needs root, as CI has); skips elsewhere."""
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs here: {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI needs root for this test)")
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)
