"""TLS mistakes get sentences that name the fix (issue 7, defect 13), and the server logs
failed handshakes, summarised per source address."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme

from mailslot.client import Client, ConnectError
from mailslot.server import ServerThread
from tests.conftest import ServerFactory, eventually, make_config, run


@pytest.fixture
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(tmp_path: Path, authority: trustme.CA) -> Iterator[ServerThread]:
    certificate = authority.issue_cert("localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    certificate.private_key_pem.write_to_path(str(key_file))
    config = replace(make_config(tmp_path / "data"), tls_cert=cert_file, tls_key=key_file)
    server = ServerThread(config).start()
    yield server
    server.stop()


def test_a_plain_client_is_told_the_server_expects_tls(tls_server: ServerThread) -> None:
    with pytest.raises(ConnectError, match="expects TLS: add --tls"):
        run(Client.connect("127.0.0.1", tls_server.port, timeout=5))


def test_a_tls_client_is_told_the_server_does_not_use_tls(server: ServerThread) -> None:
    context = ssl.create_default_context()
    with pytest.raises(ConnectError, match="does not use TLS: leave out --tls"):
        run(Client.connect("127.0.0.1", server.port, ssl_context=context, timeout=5))


def test_a_hostname_mismatch_names_the_host(
    tls_server: ServerThread, authority: trustme.CA
) -> None:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    # The certificate is for "localhost"; 127.0.0.1 is the same machine, not the same name.
    with pytest.raises(ConnectError, match=r"certificate of '127\.0\.0\.1' cannot be trusted"):
        run(Client.connect("127.0.0.1", tls_server.port, ssl_context=context, timeout=5))
    good = run(_connect_and_close("localhost", tls_server.port, context))
    assert good.startswith("mailslot/")


async def _connect_and_close(host: str, port: int, context: ssl.SSLContext) -> str:
    client = await Client.connect(host, port, ssl_context=context, timeout=5)
    await client.close()
    return client.server_info.server


def test_a_silent_peer_gets_a_sentence_not_empty_brackets() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        port = listener.getsockname()[1]
        with pytest.raises(ConnectError, match="sent no Mailslot greeting within 1 seconds"):
            run(Client.connect("127.0.0.1", port, timeout=1))
    finally:
        listener.close()


def test_failed_handshakes_are_logged_once_per_source(
    tls_server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailslot.server")
    for _ in range(5):
        with pytest.raises(ConnectError):
            run(Client.connect("127.0.0.1", tls_server.port, timeout=5))
    # The client gives up as soon as the server hangs up; the server logs just after.
    run(
        eventually(
            lambda: not tls_server.server.sessions.anonymous, "the server to finish the handshakes"
        )
    )
    lines = [r.getMessage() for r in caplog.records if "TLS handshake" in r.getMessage()]
    assert len(lines) == 1 and "127.0.0.1" in lines[0]
    tls_server.server.handshake_log.flush(force=True)
    summary = [r.getMessage() for r in caplog.records if "failed TLS handshakes" in r.getMessage()]
    assert summary and summary[0].startswith("4 more failed TLS handshakes from 127.0.0.1")


def test_plain_server_still_serves_after_the_probe(start_server: ServerFactory) -> None:
    # The client's blank-line probe must not disturb a plain server.
    server = start_server()

    async def scenario() -> None:
        client = await Client.connect("127.0.0.1", server.port)
        await client.login("alice")
        await client.ping()
        await client.close()

    run(scenario())
    assert threading.active_count() > 0
