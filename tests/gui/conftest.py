"""GUI tests: real Tk windows under Xvfb, driven through their widgets, against real servers."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailslot.server import ServerConfig, ServerThread

_skipped_because: list[str] = []


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"GUI tests cannot run in CI: {reason}")
    _skipped_because.append(reason)
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say loudly at the end of the run that the GUI went untested, and why."""
    if _skipped_because:
        terminalreporter.write_line(
            f"!!! THE GUI TESTS WERE SKIPPED: {_skipped_because[0]} !!!", red=True, bold=True
        )


@contextlib.contextmanager
def xvfb(screen: str = "1280x900x24") -> Iterator[str]:
    """A private Xvfb display of that screen size, stopped at the end."""
    binary = shutil.which("Xvfb")
    if binary is None:
        _unavailable("Xvfb is not installed (apt install xvfb) and DISPLAY is unset")
        return
    number = next(
        n
        for n in range(91, 400)
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists()
    )
    proc = subprocess.Popen(
        [binary, f":{number}", "-screen", "0", screen, "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _unavailable(f"Xvfb :{number} did not start")
        time.sleep(0.05)
    try:
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    """A usable X display: the caller's DISPLAY, else a private Xvfb we start and stop."""
    try:
        import tkinter  # noqa: F401
    except ImportError:
        _unavailable("tkinter is not installed for this Python")
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    with xvfb() as number:
        os.environ["DISPLAY"] = number
        try:
            yield number
        finally:
            del os.environ["DISPLAY"]


@pytest.fixture(scope="session")
def root(display: str) -> Iterator[Any]:
    import tkinter as tk

    from mailslot.gui import theme

    r = tk.Tk(className="MailslotTest")
    theme.apply(r)
    r.withdraw()
    yield r
    r.destroy()


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., ServerThread]]:
    """Start real servers (SQLite in tmp_path); all are stopped at the end."""
    started: list[ServerThread] = []

    def start(auth: str = "none", port: int = 0, name: str = "server") -> ServerThread:
        cfg = ServerConfig(host="127.0.0.1", port=port, data_dir=tmp_path / name, auth=auth)  # type: ignore[arg-type]
        st = ServerThread(cfg).start()
        started.append(st)
        return st

    yield start
    for st in started:
        with contextlib.suppress(Exception):
            st.stop()


def pump_until(
    root: Any, cond: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Run the Tk event loop until ``cond()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        root.update()
        if cond():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


def pump_for(root: Any, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        root.update()
        time.sleep(0.01)


@pytest.fixture
def clients(root: Any, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Open client windows (Toplevels of the session root); closed at the end."""
    import tkinter as tk

    from mailslot.gui.client_app import ClientApp

    opened: list[ClientApp] = []

    def open_client(
        server: ServerThread | None,
        user: str = "",
        *,
        password: str | None = None,
        login: bool = True,
        address: str | None = None,
        remember: bool = False,
    ) -> ClientApp:
        top = tk.Toplevel(root)
        addr = address or (f"127.0.0.1:{server.port}" if server is not None else None)
        app = ClientApp(
            top,
            server=addr,
            user=user or None,
            password=password,
            data_dir=tmp_path / "clientdata",
            remember=remember,
        )
        opened.append(app)
        if login:
            app.login.submit()
            pump_until(root, lambda: app.state in ("online", "login"), what=f"{user} to log in")
            if app.login.new_name and password:  # a new name's password, typed again
                app.login.repeat_var.set(password)
                app.login.submit()
                pump_until(root, lambda: app.state in ("online", "login"), what="the new name")
            assert app.state == "online", app.login.message.cget("text")
        return app

    yield open_client
    for app in opened:
        if app.state != "closed":
            app.close()
    pump_for(root, 0.05)
    opened.clear()
    gc.collect()  # collect Tk objects on the Tk thread, not in some worker thread later
