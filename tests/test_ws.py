"""Mailslot over WebSocket (`/ws` on the HTTP side port): the same session, limits and
error codes as TCP, and cross-site pages refused by their Origin (issue 9, item 1)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from mailslot.client import Client
from mailslot.server import ServerThread
from tests.conftest import eventually, make_config, online, run


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[ServerThread]:
    config = replace(
        make_config(tmp_path / "data", rate_per_second=20, rate_burst=30),
        http_port=0,
        allowed_origins="https://mail.example.org",
    )
    server = ServerThread(config).start()
    yield server
    server.stop()


def ws_url(server: ServerThread) -> str:
    http = server.server.operations.http
    assert http is not None and http.port is not None
    return f"ws://127.0.0.1:{http.port}/ws"


class Browser:
    """One WebSocket, frames as dicts."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0

    async def frame(self) -> dict[str, Any]:
        message = await self.ws.receive(timeout=5)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        value: dict[str, Any] = json.loads(message.data)
        return value

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        frame["id"] = self.next_id
        await self.ws.send_str(json.dumps(frame))
        while "event" in (reply := await self.frame()):
            pass
        assert reply["id"] == self.next_id
        return reply


def test_web_and_tcp_clients_share_one_server(web_server: ServerThread) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(web_server)) as ws:
            browser = Browser(ws)
            assert (await browser.frame())["event"] == "welcome"
            assert (await browser.request({"op": "login", "user": "webby"}))["created"]
            tcp = await Client.connect("127.0.0.1", web_server.port)
            await tcp.login("tess")
            await tcp.send("to the browser", to=["webby"])
            while (event := await browser.frame()).get("event") != "mail":
                pass
            assert event["waiting"] == 1
            checked = await browser.request({"op": "check"})
            assert [m["text"] for m in checked["messages"]] == ["to the browser"]
            assert (await browser.request({"op": "ack", "ids": [checked["messages"][0]["id"]]}))[
                "deleted"
            ] == 1
            sent = await browser.request(
                {"op": "send", "mode": "one", "to": ["tess"], "text": "from the browser"}
            )
            assert sent["ok"] and sent["recipients"] == 1
            assert [m.text for m in await tcp.check()] == ["from the browser"]
            await tcp.close()

    run(scenario())


def test_errors_and_limits_are_the_same_as_over_tcp(web_server: ServerThread) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(web_server)) as ws:
            browser = Browser(ws)
            await browser.frame()
            await ws.send_str("not json")
            assert (await browser.frame())["error"] == "malformed"
            assert (await browser.request({"op": "ping"}))["pong"] is True  # and it goes on
            assert (await browser.request({"op": "users"}))["error"] == "not_logged_in"
            await browser.request({"op": "login", "user": "ratey"})
            codes = [(await browser.request({"op": "users"})).get("error") for _ in range(40)]
            assert "rate_limited" in codes
            await ws.send_str('{"op":"ping","pad":"' + "x" * 70_000 + '"}')
            frames = [await browser.frame(), await browser.frame()]
            assert frames[0]["error"] == "too_large"
            assert frames[1] == {"event": "closing", "reason": "too_large"}

    run(scenario())


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # not a browser
        ("https://mail.example.org", True),  # configured
        ("https://evil.example", False),
        ("http://127.0.0.1.evil.example", False),
    ],
)
def test_cross_site_pages_are_refused_by_origin(
    web_server: ServerThread, origin: str | None, allowed: bool
) -> None:
    async def scenario() -> None:
        headers = {"Origin": origin} if origin else {}
        async with aiohttp.ClientSession() as http:
            if allowed:
                async with http.ws_connect(ws_url(web_server), headers=headers) as ws:
                    assert (await Browser(ws).frame())["event"] == "welcome"
            else:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(ws_url(web_server), headers=headers)
                assert refused.value.status == 403

    run(scenario())


def test_the_servers_own_origin_is_allowed(web_server: ServerThread) -> None:
    async def scenario() -> None:
        http_port = web_server.server.operations.http.port  # type: ignore[union-attr]
        own = {"Origin": f"http://127.0.0.1:{http_port}"}
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(ws_url(web_server), headers=own) as ws,
        ):
            assert (await Browser(ws).frame())["event"] == "welcome"

    run(scenario())


def test_the_http_port_serves_tls_with_the_servers_certificate(tmp_path: Path) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    certificate.private_key_pem.write_to_path(str(key_file))
    config = replace(
        make_config(tmp_path / "data"), tls_cert=cert_file, tls_key=key_file, http_port=0
    )
    server = ServerThread(config).start()
    context = ssl.create_default_context()
    authority.configure_trust(context)

    async def scenario() -> None:
        port = server.server.operations.http.port  # type: ignore[union-attr]
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"wss://localhost:{port}/ws", ssl=context) as ws,
        ):
            assert (await Browser(ws).frame())["event"] == "welcome"

    try:
        run(scenario())
    finally:
        server.stop()


def _masked_text_frame(payload: bytes) -> bytes:
    """A client's WebSocket text frame (RFC 6455: clients mask what they send)."""
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    size = len(payload)
    if size < 126:
        header = bytes((0x81, 0x80 | size))
    else:
        header = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    return header + mask + masked


def test_a_browser_that_never_reads_is_dropped_and_its_mail_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailslot.server")
    config = replace(
        make_config(tmp_path / "data", max_output_buffer=64 * 1024, rate_per_second=0),
        http_port=0,
    )
    server = ServerThread(config).start()
    http_port = server.server.operations.http.port  # type: ignore[union-attr]
    sink = socket.create_connection(("127.0.0.1", http_port))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.sendall(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sink.sendall(_masked_text_frame(b'{"op":"login","id":1,"user":"sink"}'))

    async def flood() -> None:
        sender = await Client.connect("127.0.0.1", server.port)
        await sender.login("flooder")
        await eventually(lambda: online(server, "sink"), "the sink to log in")
        for _ in range(40):
            with contextlib.suppress(OSError):
                sink.sendall(_masked_text_frame(b'{"op":"check","id":7}') * 20)
            await asyncio.gather(*(sender.send("y" * 1000, to=["sink"]) for _ in range(50)))
            if not online(server, "sink"):
                break
        await eventually(lambda: not online(server, "sink"), "the sink to be dropped")
        waiting = {u.name: u.waiting for u in server.snapshot().users}
        assert waiting["sink"] > 0  # nothing lost: still queued
        await sender.close()

    try:
        run(flood())
    finally:
        sink.close()
        server.stop()
    assert any("dropping" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
