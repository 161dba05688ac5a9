"""TLS on the wire (B3) with a throwaway CA."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path

import pytest
import trustme

from mailslot.client import ConnectError
from mailslot.server import ServerThread
from tests.conftest import make_config, run


def test_tls_round_trip_and_plain_clients_are_turned_away(tmp_path: Path) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    certificate.private_key_pem.write_to_path(str(key_file))
    config = replace(make_config(tmp_path / "data"), tls_cert=cert_file, tls_key=key_file)
    server = ServerThread(config).start()
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)

    async def scenario() -> None:
        from mailslot.client import Client

        alice = await Client.connect("127.0.0.1", server.port, ssl_context=client_context)
        await alice.login("alice")
        bob = await Client.connect("127.0.0.1", server.port, ssl_context=client_context)
        await bob.login("bob")
        await alice.send("over TLS", to=["bob"])
        assert [m.text for m in await bob.check()] == ["over TLS"]
        with pytest.raises(ConnectError):
            await Client.connect("127.0.0.1", server.port, timeout=2)  # no TLS
        with pytest.raises(ConnectError, match="TLS"):
            await Client.connect("127.0.0.1", server.port, ssl_context=ssl.create_default_context())
        await alice.close()
        await bob.close()

    try:
        run(scenario())
        assert server.snapshot().tls
    finally:
        server.stop()
