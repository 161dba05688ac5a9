"""`mailslot server` as an operator meets it: startup failures, logs, the silent peer."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailslot.client import Client, ConnectError
from mailslot.server.logs import JsonFormatter, TextFormatter, TurnHandler, utc_timestamp
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


def test_log_timestamps_match_isoformat_at_every_edge() -> None:
    """The timestamp is formatted once per second; the milliseconds still come out as
    datetime's isoformat gives them, across second boundaries and rounding edges."""
    record = logging.LogRecord("mailslot.server", logging.INFO, __file__, 1, "hi", (), None)
    base = 1_764_140_000
    for created in (
        base + 0.0,
        base + 0.0005,
        base + 0.9994999,
        base + 0.9999996,  # rounds up to the next second
        base + 1.25,
        1_884_243_514.5849996,
        base - 86_400.001,
    ):
        record.created = created
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert utc_timestamp(record) == expected.replace("+00:00", "Z"), created


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_of_one_loop_turn_are_written_together_and_warnings_at_once() -> None:
    stream = CountingStream()
    handler = TurnHandler(stream)
    handler.setFormatter(TextFormatter())
    log = logging.getLogger("test.turns")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    async def scenario() -> None:
        before = stream.writes
        log.info("login %d", 1)
        log.info("disconnect %d", 1)
        assert stream.writes == before  # not before the turn ends
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert stream.writes == before + 1
        log.info("login %d", 2)
        log.warning("refused %d", 3)  # at once, after the line waiting before it
        assert stream.writes == before + 2
        log.info("disconnect %d", 2)

    try:
        asyncio.run(scenario())  # the last line goes out in the loop's last turns
        assert stream.writes == 3
        loop = asyncio.new_event_loop()  # a loop that stops before its turn's end
        loop.call_soon(log.info, "cut short")
        loop.call_soon(loop.stop)
        loop.run_forever()
        loop.close()
        assert stream.writes == 3
        log.info("from a thread without a loop")  # at once, after the line waiting
        assert stream.writes == 4
        lines = [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]
        assert lines == [
            "INFO test.turns: login 1",
            "INFO test.turns: disconnect 1",
            "INFO test.turns: login 2",
            "WARNING test.turns: refused 3",
            "INFO test.turns: disconnect 2",
            "INFO test.turns: cut short",
            "INFO test.turns: from a thread without a loop",
        ]
        loop = asyncio.new_event_loop()
        loop.call_soon(log.info, "cut short again")
        loop.call_soon(loop.stop)
        loop.run_forever()
        loop.close()
        asyncio.run(scenario())  # a new loop writes what the old one left, then its own
        assert stream.writes == 7
        assert stream.getvalue().splitlines()[7].endswith("INFO test.turns: cut short again")
        handler.flush()  # as logging.shutdown() does at exit
        assert stream.writes == 7 and stream.getvalue().count("\n") == 13
    finally:
        log.removeHandler(handler)


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
