"""Run `mailslot demo` on this DISPLAY until everyone is in; print where its four windows
are as JSON ([x, y, width, height] each), from the bottom of the stack to the top.

A separate process because Tk keeps every display it used open until the process ends."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import tkinter as tk
from pathlib import Path

from mailslot.gui.demo import Demo
from tests.gui.conftest import pump_for, pump_until


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mailslot-demo-test-") as data:
        root = tk.Tk(className="Mailslot")
        demo = Demo(root, Path(data))
        demo.dashboard.confirm = lambda _t, _x: True
        try:
            pump_until(
                root,
                lambda: all(a.state == "online" for a in demo.clients.values()),
                what="alice, bob and carol to log in",
            )
            pump_for(root, 0.2)
            windows = [root, *(app.window for app in demo.clients.values())]
            stack = [str(w) for w in root.tk.splitlist(root.tk.call("wm", "stackorder", "."))]
            windows.sort(key=lambda w: stack.index(str(w)))
            boxes = [
                [w.winfo_rootx(), w.winfo_rooty(), w.winfo_width(), w.winfo_height()]
                for w in windows
            ]
            if len(sys.argv) > 1:  # a screenshot of the whole screen, for the README
                bob = demo.clients["bob"]
                pump_until(root, lambda: bob.inbox.waiting == 2, what="bob's greetings")
                pump_for(root, 0.5)
                subprocess.run(["import", "-window", "root", sys.argv[1]], check=True)
            print(json.dumps(boxes))
        finally:
            for app in demo.clients.values():
                app.close()
            demo.dashboard.stop()
            with contextlib.suppress(tk.TclError):  # the dashboard closes its own window
                pump_until(root, lambda: demo.dashboard.pump.stopped, what="the demo to stop")
                root.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
