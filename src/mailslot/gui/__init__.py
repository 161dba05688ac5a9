"""Mailslot's desktop GUIs (Tkinter/ttk): the client, the server dashboard and the demo.

The server core never imports this package (B7); the CLI imports it only when a
window is wanted and asks :func:`available` first.
"""

from __future__ import annotations

import os
import sys


def available() -> str | None:
    """None when a display and Tk are usable, else a sentence saying why not."""
    try:
        import tkinter
    except ImportError:
        return (
            "Tkinter is not installed for this Python (on Debian/Ubuntu: apt install python3-tk)."
        )
    if sys.platform.startswith("linux") or "bsd" in sys.platform:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            return "No desktop display is available (DISPLAY is not set)."
    try:
        root = tkinter.Tk()
    except tkinter.TclError as exc:
        return f"Tk cannot open a window here: {exc}."
    try:
        root.withdraw()
    finally:
        root.destroy()
    return None
