"""`mailslot server` as an operator meets it: startup failures, logs, the silent peer."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mailslot.client import Client, ConnectError
from mailslot.server.logs import JsonFormatter, TextFormatter
from tests.conftest import ServerProcess, connect, run

UTC_ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def mailslot(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSLOT_")}
    env.pop("DISPLAY", None)
    return subprocess.run(
        [sys.executable, "-m", "mailslot", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_a_port_in_use_reads_the_same_with_and_without_the_dashboard(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        headless = mailslot(
            "server", "--headless", "--port", str(port), "--data-dir", str(tmp_path / "a")
        )
        assert headless.returncode == 1
        assert headless.stderr.startswith(f"mailslot: cannot listen on 127.0.0.1:{port}: ")
        assert headless.stderr.count("\n") == 1
        dashboard = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from mailslot.gui.dashboard import run_dashboard;"
                "from mailslot.server import ServerConfig; from pathlib import Path;"
                f"sys.exit(run_dashboard(ServerConfig(port={port}, data_dir=Path(sys.argv[1]))))",
                str(tmp_path / "b"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if "No module named" in dashboard.stderr and "tkinter" in dashboard.stderr:
            pytest.skip("no tkinter here")
        assert (dashboard.returncode, dashboard.stderr) == (1, headless.stderr)


def test_a_silent_peer_is_named_as_such() -> None:
    async def scenario() -> None:
        async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        listener = await asyncio.start_server(say_nothing, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        with pytest.raises(ConnectError) as raised:
            await Client.connect("127.0.0.1", port, timeout=0.5)
        assert "()" not in str(raised.value)
        assert "sent no Mailslot greeting within 0.5 seconds" in str(raised.value)
        listener.close()

    run(scenario())


def test_log_lines_are_utc_iso_8601() -> None:
    record = logging.LogRecord("mailslot.server", logging.INFO, __file__, 1, "hi %s", ("x",), None)
    assert re.fullmatch(UTC_ISO + r" INFO mailslot.server: hi x", TextFormatter().format(record))
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "hi x"
    assert entry["level"] == "info"
    assert re.fullmatch(UTC_ISO, entry["time"])


def test_json_logs_never_carry_texts_or_passwords(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = server_process("--auth", "password", "--log-format", "json", "--log-level", "debug")

    async def scenario() -> None:
        alice = await connect(server.port)
        await alice.login("alice", "secret-password-1")
        await alice.send("secret text 2", to=["alice"])
        await alice.check()
        await alice.close()

    run(scenario())
    log = server.stop()
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any("login 'alice'" in entry["message"] for entry in entries)
    assert all(re.fullmatch(UTC_ISO, entry["time"]) for entry in entries)
    assert "secret-password-1" not in log
    assert "secret text 2" not in log
