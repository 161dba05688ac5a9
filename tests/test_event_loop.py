"""`mailslot server` on either event loop: uvloop when installed (and TLS is off),
asyncio's otherwise; clients get the same service."""

from __future__ import annotations

import importlib.util
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from mailslot.client import Client, ConnectError
from tests.conftest import ServerProcess, run

LOOPS = [
    "asyncio",
    pytest.param(
        "uvloop",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed"
        ),
    ),
]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_round_trip_and_a_check_on_either_loop(
    loop: str, monkeypatch: pytest.MonkeyPatch, server_process: Callable[..., ServerProcess]
) -> None:
    monkeypatch.setenv("MAILSLOT_EVENT_LOOP", loop)
    server = server_process("--auth", "none")

    async def scenario() -> None:
        alice = await Client.connect("127.0.0.1", server.port)
        await alice.login("alice")
        bob = await Client.connect("127.0.0.1", server.port)
        await bob.login("bob")
        sent = [await alice.send(f"note {i}", to=["bob"]) for i in range(3)]
        assert len({s.id for s in sent}) == 3
        assert [m.text for m in await bob.check()] == ["note 0", "note 1", "note 2"]
        await alice.close()
        await bob.close()

    run(scenario())
    assert "login 'bob'" in server.stop()


def test_tls_is_served_whatever_the_loop_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server_process: Callable[..., ServerProcess]
) -> None:
    monkeypatch.setenv("MAILSLOT_EVENT_LOOP", "uvloop")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    certificate.private_key_pem.write_to_path(str(key_file))
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)
    server = server_process(
        "--auth", "none", "--tls-cert", str(cert_file), "--tls-key", str(key_file)
    )

    async def scenario() -> None:
        # The client speaks first in a TLS handshake: its hello must not be lost
        # between the accept and the start of TLS.
        for _ in range(20):
            alice = await Client.connect("127.0.0.1", server.port, ssl_context=trusted)
            await alice.close()
        with pytest.raises(ConnectError, match="TLS"):
            await Client.connect("127.0.0.1", server.port, ssl_context=ssl.create_default_context())

    run(scenario())
    assert "TLS handshake with 127.0.0.1" in server.stop()
