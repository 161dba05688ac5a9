"""The web client in Debian's Chromium, driven by Playwright for Python, against a
real server on ephemeral ports. Playwright's own browser download is never used:
the system Chromium is launched by its path, headless, with a fresh profile."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mailslot.server import ServerThread
from tests.conftest import make_config

CHROMIUM = Path(os.environ.get("MAILSLOT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000  # a bound against hangs, not a performance limit
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}

try:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
    from playwright.sync_api import expect as _expect

    expect = _expect
    expect.set_options(timeout=TIMEOUT_MS)
except ImportError:  # pragma: no cover - reported by the browser fixture
    sync_playwright = None  # type: ignore[assignment]


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the browser tests cannot run: {reason}")
    pytest.skip(f"SKIPPED LOUDLY: the browser tests need {reason}")


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if sync_playwright is None:
        _missing("Playwright for Python (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        _missing(f"Chromium at {CHROMIUM} (apt install chromium)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


class WebServer:
    """A Mailslot server with its HTTP port, restartable on the same ports and data."""

    def __init__(self, data_dir: Path, tls: tuple[Path, Path] | None = None, **limits: Any) -> None:
        config = replace(make_config(data_dir, "password", **limits), http_port=0)
        if tls is not None:
            config = replace(config, tls_cert=tls[0], tls_key=tls[1])
        self.thread = ServerThread(config).start()
        http = self.thread.server.operations.http
        assert http is not None and http.port is not None
        # A restart listens on the very same ports, where the open page looks for it.
        self.config = replace(config, port=self.thread.port, http_port=http.port)

    @property
    def tcp_port(self) -> int:
        return self.thread.port

    @property
    def url(self) -> str:
        scheme = "http" if self.config.tls_cert is None else "https"
        return f"{scheme}://127.0.0.1:{self.config.http_port}/"

    def stop(self) -> None:
        if self.thread.running:
            self.thread.stop()

    def start_again(self, data_dir: Path | None = None) -> None:
        """On the same ports; on other data (say, a backup from before) if given."""
        if data_dir is not None:
            self.config = replace(self.config, data_dir=data_dir)
        self.thread = ServerThread(self.config).start()

    def cli(self, *args: str, password: str) -> subprocess.CompletedProcess[str]:
        """`python -m mailslot ...` as a person at a terminal would run it."""
        env = {
            **os.environ,
            "MAILSLOT_SERVER": f"127.0.0.1:{self.tcp_port}",
            "MAILSLOT_PASSWORD": password,
            "XDG_DATA_HOME": str(self.config.data_dir.parent / "cli-home"),
        }
        return subprocess.run(
            [sys.executable, "-m", "mailslot", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[WebServer]:
    server = WebServer(tmp_path / "data")
    yield server
    server.stop()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Any]:
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def make(viewport: dict[str, int] | None = None, **options: Any) -> BrowserContext:
        context = browser.new_context(viewport=viewport or DESKTOP, **options)
        context.set_default_timeout(TIMEOUT_MS)
        context.on("weberror", lambda error: errors.append(str(error.error)))
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    assert errors == [], "uncaught errors in the page"


def open_page(context: BrowserContext, server: WebServer) -> Page:
    page = context.new_page()
    page.goto(server.url)
    return page


def sign_in(page: Page, name: str, password: str, *, new: bool = True) -> None:
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.click("#login-submit")
    if new:
        expect(page.locator("#login-confirm")).to_be_visible()
        page.fill("#login-confirm", password)
        page.click("#login-submit")
    expect(page.locator("#app-view")).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")
