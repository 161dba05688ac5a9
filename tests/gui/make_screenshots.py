"""Save the README's screenshots (docs/screenshots/*.png) from the real apps.

Usage: python tests/gui/make_screenshots.py [OUTPUT_DIR]   (needs a DISPLAY, or Xvfb
installed, and ImageMagick's ``import``). test_screenshots.py runs it into a temp dir.
The demo is shot on a screen of its own, 1280×800, as a laptop shows it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path

SHOTS = ("login", "compose", "inbox", "reply", "sent", "dashboard", "demo")
REPO = Path(__file__).parents[2]


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


@contextlib.contextmanager
def own_display(screen: str) -> Iterator[str]:
    """A private Xvfb of that screen size for as long as the block runs."""
    number = next(
        n
        for n in range(91, 400)
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists()
    )
    xvfb = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", screen, "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if xvfb.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Xvfb :{number} did not start")
            time.sleep(0.05)
        yield f":{number}"
    finally:
        xvfb.terminate()
        xvfb.wait(5)


def click_link(text: tk.Text, index: str) -> None:
    text.see(index)
    text.update_idletasks()
    box = text.bbox(index)
    assert box is not None
    x, y = box[0] + 2, box[1] + 2
    # Tk finds a tag's bindings from the character under the pointer: move there first.
    text.event_generate("<Motion>", x=x, y=y)
    text.event_generate("<Button-1>", x=x, y=y)
    text.event_generate("<ButtonRelease-1>", x=x, y=y)


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
        for name, password in (("alice", "wonderland"), ("bob", "builder")):
            sc = SyncClient.connect("127.0.0.1", server.port)
            sc.login(name, password)
            sc.close()
        for name in ("carol", "dmitri", "erin", "frank", "grace", "李雷", "olivia", "zoë"):
            sc = SyncClient.connect("127.0.0.1", server.port)
            sc.login(name, "pw-" + name)
            others.append(sc)
        root = tk.Tk(className="Mailslot")
        theme.apply(root)
        dash = Dashboard(root, server, confirm=lambda _t, _x: True)

        # Login: a name used for the first time, so its password is asked for twice.
        login_top = tk.Toplevel(root)
        login = ClientApp(
            login_top, server=address, user="hannah", password="s3cret", data_dir=tmp / "c"
        )
        login.login.set_auth("password")
        login.login.submit()
        _pump(root, lambda: login.login.new_name)

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
        bob.set_fetch_on_arrival(True)  # bob's mail shows up without a click
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
        _pump(root, lambda: "Lunch at" in bob.inbox.content() and "rack" in bob.inbox.content())
        bob.notebook.select(bob.inbox)  # type: ignore[no-untyped-call]

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

        windows: list[tk.Misc] = [root, login_top, alice_top, bob_top]
        dash.refresh_now()
        _settle(root, 1.0)
        paths = []

        def shot(name: str, window: tk.Misc) -> None:
            path = out / f"{name}.png"
            _capture(root, window, windows, path)
            paths.append(path)

        shot("login", login_top)
        shot("compose", alice_top)
        shot("inbox", bob_top)

        # Reply: bob answers carol from her message in the inbox.
        lunch = next(m for m in bob.inbox.view.messages() if m.sender == "carol")
        link = bob.inbox.view.link_index(lunch.id)
        assert link is not None
        click_link(bob.inbox.text, link)
        bob.compose.set_text("12:30 works. See you there! 🍜")
        _settle(root)
        shot("reply", bob_top)

        # Sent: what bob sent, kept on his computer.
        bob.compose.submit()
        _pump(root, lambda: "See you there" in bob.sent_view.content())
        bob.notebook.select(bob.sent_view)  # type: ignore[no-untyped-call]
        shot("sent", bob_top)

        shot("dashboard", root)
        for app in (login, alice, bob):
            app.close()
        dash.stop()
        _pump(root, lambda: dash.pump.stopped, timeout=20)
        with contextlib.suppress(tk.TclError):
            root.destroy()

        # The demo on a 1280×800 screen of its own (a separate process: Tk keeps every
        # display it has used open until the process ends).
        demo = out / "demo.png"
        with own_display("1280x800x24") as display:
            subprocess.run(
                [sys.executable, "-m", "tests.gui.demo_boxes", str(demo)],
                env={**os.environ, "DISPLAY": display},
                cwd=REPO,
                check=True,
                stdout=subprocess.DEVNULL,
                timeout=120,
            )
        paths.append(demo)
        return paths
    finally:
        for sc in others:
            sc.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "screenshots"
    with contextlib.ExitStack() as stack:
        if not os.environ.get("DISPLAY"):
            os.environ["DISPLAY"] = stack.enter_context(own_display("1280x900x24"))
        for path in make(out):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
