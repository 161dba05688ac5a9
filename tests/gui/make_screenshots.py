"""Save docs/screenshots/{login,compose,inbox,dashboard}.png from the real apps.

Usage: python tests/gui/make_screenshots.py [OUTPUT_DIR]   (needs a DISPLAY, or Xvfb
installed, and ImageMagick's ``import``). test_screenshots.py runs it into a temp dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import tkinter as tk
from collections.abc import Callable
from pathlib import Path

SHOTS = ("login", "compose", "inbox", "dashboard")


def _pump(root: tk.Tk, cond: Callable[[], object], timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("the GUI did not reach the expected state")
        root.update()
        time.sleep(0.01)


def _settle(root: tk.Tk, seconds: float = 0.4) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        root.update()
        time.sleep(0.01)


def _capture(root: tk.Tk, window: tk.Misc, windows: list[tk.Misc], path: Path) -> None:
    for w in windows:
        if w is not window:
            w.withdraw()  # type: ignore[attr-defined]
    window.deiconify()  # type: ignore[attr-defined]
    window.lift()  # type: ignore[attr-defined]
    _settle(root)
    subprocess.run(["import", "-window", str(window.winfo_id()), str(path)], check=True)


def make(out: Path) -> list[Path]:
    from mailslot.client import SyncClient
    from mailslot.gui import theme
    from mailslot.gui.client_app import ClientApp
    from mailslot.gui.dashboard import Dashboard
    from mailslot.server import ServerConfig, ServerThread

    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="mailslot-shots-"))
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
    os.environ["XDG_DATA_HOME"] = str(tmp / "data")
    server = ServerThread(
        ServerConfig(host="127.0.0.1", port=0, data_dir=tmp / "server", auth="password")
    ).start()
    address = f"127.0.0.1:{server.port}"
    others: list[SyncClient] = []
    try:
        # A small, lived-in server: some people online, some not, some mail waiting.
        for name in ("carol", "dmitri", "erin", "frank", "grace", "李雷", "olivia", "zoë"):
            sc = SyncClient.connect("127.0.0.1", server.port)
            sc.login(name, "pw-" + name)
            others.append(sc)
        root = tk.Tk(className="Mailslot")
        theme.apply(root)
        dash = Dashboard(root, server, confirm=lambda _t, _x: True)

        login_top = tk.Toplevel(root)
        login = ClientApp(login_top, server=address, user="alice", data_dir=tmp / "c")
        login.login.set_auth("password")

        def signed_in(user: str, password: str) -> tuple[tk.Toplevel, ClientApp]:
            top = tk.Toplevel(root)
            app = ClientApp(
                top,
                server=address,
                user=user,
                password=password,
                data_dir=tmp / "c",
                autoconnect=True,
            )
            return top, app

        alice_top, alice = signed_in("alice", "wonderland")
        bob_top, bob = signed_in("bob", "builder")
        _pump(root, lambda: alice.state == "online" and bob.state == "online")
        for sc in others[4:]:
            sc.close()
        carol, dmitri, erin = others[0], others[1], others[2]
        carol.send("Lunch at 12:30? The new place on Rue Mouffetard.", to=["bob"])
        dmitri.send("Привет, Боб! Отчёт готов — посмотри, пожалуйста. 👍", to=["bob", "alice"])
        erin.send(
            "Reminder: the server moves to the new rack tonight at 22:00. "
            "Expect a short reconnect; nothing queued will be lost.",
            everyone=True,
        )
        _pump(root, lambda: bob.inbox.waiting == 3)

        # Compose: several people, two picked, a message being written.
        alice.compose.set_mode("many")
        for name in ("bob", "carol"):
            alice.compose.to_var.set(name)
            alice.compose.accept_typed()
        alice.compose.set_text(
            "Hi both — the draft is in the shared folder. "
            "Comments by Friday would be great. Merci ! 🙂"
        )
        _pump(root, lambda: alice.inbox.waiting == 2)

        # Inbox: bob checks.
        bob.check()
        _pump(root, lambda: "Lunch at" in bob.inbox.content())
        windows: list[tk.Misc] = [root, login_top, alice_top, bob_top]
        dash.refresh_now()
        _settle(root, 1.0)
        paths = []
        for name, win in (
            ("login", login_top),
            ("compose", alice_top),
            ("inbox", bob_top),
            ("dashboard", root),
        ):
            path = out / f"{name}.png"
            _capture(root, win, windows, path)
            paths.append(path)
        for app in (login, alice, bob):
            app.close()
        dash.stop()
        _pump(root, lambda: dash.pump.stopped, timeout=20)
        return paths
    finally:
        for sc in others:
            sc.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    out = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).parents[2] / "docs" / "screenshots"
    )
    xvfb = None
    if not os.environ.get("DISPLAY"):
        number = next(n for n in range(91, 400) if not Path(f"/tmp/.X{n}-lock").exists())
        xvfb = subprocess.Popen(
            ["Xvfb", f":{number}", "-screen", "0", "1280x900x24"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        os.environ["DISPLAY"] = f":{number}"
    try:
        for path in make(out):
            print(path)
    finally:
        if xvfb is not None:
            xvfb.terminate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
