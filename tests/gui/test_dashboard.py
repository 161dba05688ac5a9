"""The server dashboard and the demo, against real servers (S15–S17, B12)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailslot.client import SyncClient
from mailslot.gui.dashboard import EVENT_BATCH, Dashboard
from tests.gui.conftest import pump_for, pump_until, xvfb


@pytest.fixture
def dashboard(root: Any, servers: Any) -> Iterator[Dashboard]:
    import tkinter as tk

    srv = servers()
    top = tk.Toplevel(root)
    dash = Dashboard(top, srv, confirm=lambda _title, _text: True)
    yield dash
    if not dash.stopping:
        dash.stop()
    pump_until(root, lambda: not srv.running, what="the server to stop")


def _online(dash: Dashboard, name: str) -> bool:
    row = dash.table_row(name)
    return row is not None and row[1] == "online"


def test_table_marks_users_online_and_offline(root: Any, dashboard: Dashboard) -> None:
    port = dashboard.server.port
    alice = SyncClient.connect("127.0.0.1", port)
    alice.login("alice")
    bob = SyncClient.connect("127.0.0.1", port)
    bob.login("bob")
    pump_until(
        root,
        lambda: _online(dashboard, "alice") and _online(dashboard, "bob"),
        what="alice and bob online in the table",
    )
    assert dashboard.counters["online"].cget("text") == "2"
    bob.close()
    pump_until(
        root,
        lambda: (
            dashboard.table_row("bob") is not None and dashboard.table_row("bob")[1] == "offline"
        ),  # type: ignore[index]
        what="bob offline in the table",
    )
    assert "last seen" in dashboard.table_row("bob")[2]  # type: ignore[index]
    # A rejected name, a send (count only, never the text) and a pickup show in the log.
    intruder = SyncClient.connect("127.0.0.1", port)
    with pytest.raises(Exception, match=r"(?i)in use"):
        intruder.login("alice")
    intruder.close()
    alice.send("top secret words", to=["bob"])
    pump_until(
        root,
        lambda: dashboard.table_row("bob")[3] == "1",  # type: ignore[index]
        what="bob's waiting count",
    )
    log = dashboard.log_text()
    assert "alice logged in" in log and "bob disconnected" in log
    assert "Rejected “alice”" in log and "name already in use" in log
    assert "alice sent a message to 1 recipient" in log
    assert "top secret" not in log
    dashboard.filter_var.set("ali")
    pump_for(root, 0.05)
    assert dashboard.table_row("bob") is None and dashboard.table_row("alice") is not None
    dashboard.sort_by("waiting")
    alice.close()


def test_stays_responsive_under_an_event_flood(root: Any, dashboard: Dashboard) -> None:
    feed = dashboard.server.server.events
    for i in range(20_000):
        feed.publish("connected", peer=f"127.0.0.1:{10000 + i % 50000}")
    # Responsiveness by construction: each Tk turn takes at most one bounded batch,
    # so the flood is spread over many turns instead of freezing one.
    largest_step = 0
    for _ in range(2_000):
        if dashboard.events_seen >= 20_000:
            break
        before = dashboard.events_seen
        root.update()
        largest_step = max(largest_step, dashboard.events_seen - before)
        time.sleep(0.01)
    assert dashboard.events_seen >= 20_000
    assert 0 < largest_step <= EVENT_BATCH
    lines = int(dashboard.log.index("end-1c").split(".")[0])
    assert lines <= 5001


def test_closing_asks_and_stops_the_server(root: Any, servers: Any) -> None:
    import tkinter as tk

    srv = servers()
    answers: list[bool] = [False, True]
    asked: list[str] = []

    def confirm(title: str, text: str) -> bool:
        asked.append(title)
        return answers.pop(0)

    top = tk.Toplevel(root)
    dash = Dashboard(top, srv, confirm=confirm)
    pump_for(root, 0.1)
    dash.request_close()  # "Cancel": keeps running
    assert not dash.stopping and srv.running
    dash.request_close()  # "OK": stops cleanly
    pump_until(root, lambda: not srv.running, what="the server to stop")
    assert asked == ["Stop the Mailslot server?"] * 2


def test_demo_opens_dashboard_and_three_clients(root: Any, tmp_path: Path) -> None:
    import tkinter as tk

    from mailslot.gui.demo import Demo

    top = tk.Toplevel(root)
    demo = Demo(top, tmp_path)  # type: ignore[arg-type]
    demo.dashboard.confirm = lambda _t, _x: True
    try:
        pump_until(
            root,
            lambda: all(a.state == "online" for a in demo.clients.values()),
            what="alice, bob and carol to log in",
        )
        pump_until(
            root,
            lambda: all(_online(demo.dashboard, n) for n in demo.clients),
            what="the dashboard to list them online",
        )
        pump_until(
            root, lambda: demo.clients["bob"].inbox.waiting == 2, what="bob's greeting messages"
        )
    finally:
        for app in demo.clients.values():
            app.close()
        demo.dashboard.stop()
        pump_until(root, lambda: not demo.server.running, what="the demo to stop")


def test_demo_windows_tile_where_they_fit_and_cascade_where_not() -> None:
    from mailslot.gui.demo import _places

    assert _places(2560, 1440) == [
        "1276x664+0+0",
        "1276x664+1280+0",
        "1276x664+0+696",
        "1276x664+1280+696",
    ]
    assert _places(1920, 1080)[3] == "956x484+960+516"
    assert _places(1280, 800) == [
        "796x540+0+0",
        "796x540+160+60",
        "796x540+320+120",
        "796x540+480+180",
    ]


@pytest.mark.parametrize("window_manager", [False, True], ids=["no wm", "openbox"])
@pytest.mark.parametrize("screen", [(1280, 800), (1920, 1080), (1366, 768)])
def test_every_demo_window_is_in_view_on_common_screens(
    screen: tuple[int, int], window_manager: bool
) -> None:
    """On a screen of that size (its own Xvfb, bare or with openbox's title bars): all four
    windows lie inside the screen, leaving room for title bars and panels, and none hides
    another's top-left corner, where its title and header are."""
    from mailslot.gui.demo import PANELS, TITLE_BAR

    if window_manager and not (shutil.which("openbox") and shutil.which("xprop")):
        pytest.skip("openbox (or xprop) is not installed: apt install openbox x11-utils")
    width, height = screen
    with xvfb(f"{width}x{height}x24") as display, _window_manager(display, window_manager):
        shown = subprocess.run(
            [sys.executable, "-m", "tests.gui.demo_boxes"],
            env={**os.environ, "DISPLAY": display},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert shown.returncode == 0, shown.stderr
    boxes = json.loads(shown.stdout)
    for x, y, w, h in boxes:
        assert x >= 0 and y >= 0 and w >= 700 and h >= 470, boxes
        # a window manager's title bar is above y already; a bare screen must leave room for one
        title_bar = 0 if window_manager else TITLE_BAR
        assert x + w <= width and y + h + title_bar <= height - PANELS, boxes
    for below, (x, y, _w, _h) in enumerate(boxes):
        for ox, oy, ow, oh in boxes[below + 1 :]:  # the windows above it
            assert not (ox <= x + 8 < ox + ow and oy <= y + 8 < oy + oh), boxes


@contextlib.contextmanager
def _window_manager(display: str, wanted: bool) -> Iterator[None]:
    """openbox on ``display`` while the block runs, once it has taken the screen."""
    if not wanted:
        yield
        return
    env = {**os.environ, "DISPLAY": display}
    # openbox now and then exits at once on a brand-new Xvfb (status 1, nothing said):
    # start it again then, a few times, before calling the test failed.
    for _attempt in range(5):
        wm = subprocess.Popen(
            ["openbox"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while (
            wm.poll() is None
            and "window id"
            not in subprocess.run(
                ["xprop", "-root", "_NET_SUPPORTING_WM_CHECK"],
                env=env,
                capture_output=True,
                text=True,
            ).stdout
        ):
            assert time.monotonic() < deadline, "openbox did not take the screen"
            time.sleep(0.05)
        if wm.poll() is None:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("openbox did not start (it exited at once, five times)")
    try:
        yield
    finally:
        wm.terminate()
        wm.wait(5)
