"""``mailslot demo`` (B12): a throw-away server with its dashboard and three logged-in clients."""

from __future__ import annotations

import shutil
import sys
import tempfile
import tkinter as tk
from pathlib import Path

from mailslot.gui.client_app import ClientApp
from mailslot.gui.dashboard import Dashboard
from mailslot.server import ServerConfig, ServerThread

DEMO_USERS = ("alice", "bob", "carol")
GREETINGS: tuple[tuple[str, list[str], str], ...] = (
    ("alice", ["bob"], "Hi Bob! This came through Mailslot — press “Check messages” to read it."),
    ("carol", [], "Hello everyone, Carol here. Try sending a message to one, several or all."),
)


class Demo:
    def __init__(self, root: tk.Tk, data_dir: Path) -> None:
        self.root = root
        self.data_dir = data_dir
        self.server = ServerThread(
            ServerConfig(host="127.0.0.1", port=0, data_dir=data_dir / "server", auth="none")
        )
        self.server.start()
        self.dashboard = Dashboard(root, self.server)
        places = _places(root.winfo_screenwidth(), root.winfo_screenheight())
        root.geometry(places[0])
        self.clients: dict[str, ClientApp] = {}
        for i, name in enumerate(DEMO_USERS):
            top = tk.Toplevel(root, class_="Mailslot")
            app = ClientApp(
                top,
                server=f"127.0.0.1:{self.server.port}",
                user=name,
                data_dir=data_dir / "clients",
                remember=False,
                autoconnect=True,
                place=False,
            )
            top.geometry(places[i + 1])
            self.clients[name] = app
        # Stacked in the order they cascade, the dashboard at the bottom, so that every
        # window's title and header stay in view.
        root.update_idletasks()
        for app in self.clients.values():
            app.window.lift()
        self._greeted = False
        root.after(200, self._greet)

    def _greet(self) -> None:
        """Once everyone is in, send two example messages so the badges light up."""
        if self._greeted:
            return
        if not all(app.state == "online" for app in self.clients.values()):
            if not self.dashboard.stopping:
                self.root.after(200, self._greet)
            return
        self._greeted = True
        for sender, to, text in GREETINGS:
            session = self.clients[sender].session
            if session is not None:
                session.sc.submit(session.sc.client.send, text, to=to, everyone=not to)


def run_demo() -> int:
    """Entry point of ``mailslot demo``; everything lives in a temporary directory."""
    data_dir = Path(tempfile.mkdtemp(prefix="mailslot-demo-"))
    try:
        try:
            root = tk.Tk(className="Mailslot")
        except tk.TclError as exc:
            print(f"mailslot: cannot open windows: {exc}", file=sys.stderr)
            return 1
        try:
            Demo(root, data_dir)
        except Exception as exc:
            print(f"mailslot: the demo could not start: {exc}", file=sys.stderr)
            root.destroy()
            return 1
        root.mainloop()
        return 0
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


TITLE_BAR = 32
"""Room a window manager's title bar takes above each window."""
FRAME = 4
"""Room a window manager's borders take beside each window."""
PANELS = 48
"""Room desktop panels (task bar, top bar) may take off the screen's height."""
CLIENT_MIN = (720, 480)
CASCADE_STEP = (160, 60)


def _places(screen_width: int, screen_height: int) -> list[str]:
    """Geometries for the dashboard and the three clients, every one inside the screen with
    room for title bars and panels: a 2×2 grid where four windows of at least
    ``CLIENT_MIN`` fit, else a cascade that keeps every title bar and left edge in view."""
    usable = screen_height - PANELS
    half_width, half_height = screen_width // 2, usable // 2 - TITLE_BAR
    if half_width >= CLIENT_MIN[0] and half_height >= CLIENT_MIN[1]:
        return [
            f"{half_width - FRAME}x{half_height}+{x}+{y}"
            for y in (0, half_height + TITLE_BAR)
            for x in (0, half_width)
        ]
    dx, dy = CASCADE_STEP
    width = max(CLIENT_MIN[0], min(1000, screen_width - 3 * dx - FRAME))
    height = max(CLIENT_MIN[1], min(700, usable - 3 * dy - TITLE_BAR))
    return [f"{width}x{height}+{dx * i}+{dy * i}" for i in range(4)]
