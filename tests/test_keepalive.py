"""A client whose machine vanishes sends no reset: the server probes its idle
connections (TCP keepalive), so such a session — and in cluster mode its name — is
freed in about a minute and a half instead of at the idle timeout."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import eventually, run


def _timer_of(local_port: int, remote_port: int) -> str | None:
    """The kernel's timer kind ("tr" in /proc/net/tcp) of one established socket:
    00 none, 01 retransmit, 02 keepalive."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        pytest.skip("no /proc/net/tcp on this system")
    for line in lines:
        fields = line.split()
        local, remote, state, timer = fields[1], fields[2], fields[3], fields[5]
        if (
            state == "01"  # established
            and int(local.split(":")[1], 16) == local_port
            and int(remote.split(":")[1], 16) == remote_port
        ):
            return timer.split(":")[0]
    return None


def test_the_server_probes_idle_client_connections(server_process: Any) -> None:
    server = server_process("--auth", "none")
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.recv(4096)  # the welcome: the server has set the connection up
        client_port = client.getsockname()[1]
        run(
            eventually(
                lambda: _timer_of(server.port, client_port) == "02",
                "the server's side of the connection to carry a keepalive timer",
            )
        )
        # The client's own side has none: the timer is the server's doing.
        assert _timer_of(client_port, server.port) == "00"
