"""How the server serves the web client: security and cache headers, gzip, the size
of a first visit as the browser measures it, and WebSockets from other sites refused."""

from __future__ import annotations

import gzip
import http.server
import logging
import re
import threading
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.web.conftest import WebServer, expect, open_page, sign_in

FIRST_LOAD_BUDGET = 150 * 1024


def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_headers_etags_and_gzip(web_server: WebServer) -> None:
    status, headers, body = fetch(web_server.url, **{"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Encoding"] == "gzip"
    html = gzip.decompress(body).decode()
    assert "<title>Mailslot</title>" in html
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "style-src 'self';" in policy
    assert "unsafe" not in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-cache"

    again, revalidated, empty = fetch(web_server.url, **{"If-None-Match": headers["ETag"]})
    assert (again, empty) == (304, b"")
    assert revalidated["ETag"] == headers["ETag"]

    status, plain, body = fetch(web_server.url + "main.js")
    assert status == 200
    assert plain["Content-Type"] == "text/javascript; charset=utf-8"
    assert "Content-Encoding" not in plain
    assert body.startswith(b"// The Mailslot web client")
    assert fetch(web_server.url + "nothing.js")[0] == 404
    assert fetch(web_server.url + "../pyproject.toml")[0] == 404


def test_the_page_has_no_inline_script_or_style() -> None:
    html = (resources.files("mailslot.web") / "static" / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers


def test_a_first_visit_stays_under_150_kb(web_server: WebServer, new_context: Any) -> None:
    context = new_context()
    page = context.new_page()
    sizes: list[int] = []
    violations: list[str] = []
    page.on(
        "requestfinished",
        lambda request: sizes.append(
            request.sizes()["responseBodySize"] + request.sizes()["responseHeadersSize"]
        ),
    )
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(web_server.url)
    sign_in(page, "alice", "pw")
    assert len(sizes) >= 5  # the page, its style sheet, icon and modules
    assert sum(sizes) < FIRST_LOAD_BUDGET, f"{sum(sizes)} bytes"
    assert violations == []


def serve_once(html: str) -> str:
    """Another site, on another port of 127.0.0.1; returns its address."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/"


def test_a_websocket_from_another_site_is_refused(
    web_server: WebServer, new_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    socket_url = web_server.url.replace("http:", "ws:") + "ws"
    evil_page = f"""<!doctype html><title>evil</title><script>
        const socket = new WebSocket({socket_url!r});
        let welcomed = false;
        socket.onmessage = () => (welcomed = true);
        socket.onclose = () => (document.title = welcomed ? "connected" : "refused");
        </script>"""
    evil_site = serve_once(evil_page)
    context = new_context()
    page = context.new_page()
    page.goto(evil_site)
    expect(page).to_have_title("refused")
    # Refused by the server for its Origin, not by the browser on its way there.
    assert "refused a WebSocket from 127.0.0.1" in caplog.text
    assert f"origin {evil_site.rstrip('/')}" in caplog.text

    # The same script from the server's own origin gets its welcome.
    own = open_page(context, web_server)
    own.evaluate(
        """url => new Promise(resolve => {
            const socket = new WebSocket(url);
            socket.onmessage = event => {
                document.title = JSON.parse(event.data).event;
                resolve();
            };
        })""",
        socket_url,
    )
    expect(own).to_have_title("welcome")


def test_over_tls_with_the_servers_certificate(tmp_path: Path, new_context: Any) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    certificate.private_key_pem.write_to_path(str(key_file))
    server = WebServer(tmp_path / "data", tls=(cert_file, key_file))
    try:
        assert server.url.startswith("https://")
        # The test's own authority is not one the browser knows.
        page = new_context(ignore_https_errors=True).new_page()
        sockets: list[str] = []
        page.on("websocket", lambda socket: sockets.append(socket.url))
        page.goto(server.url)
        sign_in(page, "alice", "pw")
        assert sockets == [server.url.replace("https:", "wss:") + "ws"]
        page.fill("#to", "alice")
        page.fill("#text", "over TLS")
        page.click("#send")
        page.click("#check")
        expect(page.locator("#messages li[data-kind=in] .text")).to_have_text(["over TLS"])
    finally:
        server.stop()
