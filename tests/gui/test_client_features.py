"""The desktop client's newer parts against a real server: fetch on arrival, reply, Sent,
search, a new name's password, changing it, and the small things a newcomer trips over."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mailslot.client import SyncClient, WrongPassword
from mailslot.gui.client_app import ClientApp
from tests.gui.conftest import pump_for, pump_until
from tests.gui.make_screenshots import click_link

NOTHING_YET = (
    "New messages\n"
    "Nothing fetched yet. Press “Check messages” to fetch your mail.\n"
    "\n"
    "Earlier messages, kept on this computer\n"
    "No archived messages yet.\n"
)


def _archive_shown(root: Any, app: ClientApp) -> None:
    pump_until(root, lambda: app.sent_view.content() != "", what="the archive to load")
    pump_for(root, 0.1)


def _send_as(port: int, sender: str, text: str, to: list[str]) -> int:
    sc = SyncClient.connect("127.0.0.1", port)
    try:
        sc.login(sender)
        return sc.send(text, to=to).id
    finally:
        sc.close()


def test_the_inbox_empty_states_are_separate_lines(root: Any, servers: Any, clients: Any) -> None:
    srv = servers()
    bob = clients(srv, "bob")
    _archive_shown(root, bob)
    assert bob.inbox.content() == NOTHING_YET
    bob.sign_out()
    bob.login.submit()
    pump_until(root, lambda: bob.state == "online", what="bob to sign in again")
    _archive_shown(root, bob)
    assert bob.inbox.content() == NOTHING_YET


def test_mail_is_fetched_as_it_arrives_when_asked_to(
    root: Any, servers: Any, clients: Any, tmp_path: Path
) -> None:
    srv = servers()
    bob = clients(srv, "bob", remember=True)
    _archive_shown(root, bob)
    _send_as(srv.port, "alice", "waits for a click", ["bob"])
    pump_until(root, lambda: bob.inbox.waiting == 1, what="bob's badge")
    pump_for(root, 0.3)
    assert "waits for a click" not in bob.inbox.content()  # off by default (S11)

    bob.compose.text.focus_set()
    bob.inbox.auto_check.invoke()  # on: what waits comes in at once
    pump_until(root, lambda: "waits for a click" in bob.inbox.content(), what="the waiting mail")
    _send_as(srv.port, "alice", "came in by itself", ["bob"])
    pump_until(root, lambda: "came in by itself" in bob.inbox.content(), what="the new mail")
    assert bob.inbox.waiting == 0 and "Inbox (" not in bob.notebook.tab(bob.inbox, "text")
    assert bob.notebook.select() == str(bob.compose)  # no tab switch while writing
    burst = SyncClient.connect("127.0.0.1", srv.port)  # mail arriving while a check runs
    burst.login("alice")
    for n in range(20):
        burst.send(f"burst {n:02}", to=["bob"])
    burst.close()
    pump_until(root, lambda: "burst 19" in bob.inbox.content(), what="the whole burst")
    pump_until(root, lambda: not bob.inbox.busy, what="the last check to end")
    assert all(f"burst {n:02}" in bob.inbox.content() for n in range(20))
    assert srv.snapshot().waiting == 0 and bob.inbox.waiting == 0

    settings = Path(os.environ["XDG_CONFIG_HOME"]) / "mailslot" / "client.json"
    pump_until(root, lambda: "bob@" in settings.read_text(), what="the setting to be saved")
    assert json.loads(settings.read_text())["fetch_on_arrival"] == [f"bob@127.0.0.1:{srv.port}"]
    bob.close()
    again = clients(srv, "bob", remember=True)
    assert again.inbox.auto_var.get() is True  # remembered for bob
    carol = clients(srv, "carol", remember=True)
    assert carol.inbox.auto_var.get() is False  # and for bob only


def test_reply_follow_up_sent_view_and_search(root: Any, servers: Any, clients: Any) -> None:
    srv = servers()
    alice, bob, carol = (clients(srv, n) for n in ("alice", "bob", "carol"))
    for app in (alice, bob, carol):
        _archive_shown(root, app)
    assert "Nothing sent yet" in alice.sent_view.content()

    alice.compose.set_mode("many")
    for name in ("bob", "carol"):
        alice.compose.to_var.set(name)
        assert alice.compose.accept_typed()
    alice.compose.set_text("Lunch at noon? 🍜")
    alice.compose.submit()
    pump_until(root, lambda: "Lunch at noon" in alice.sent_view.content(), what="the Sent view")
    assert alice.sent_view.content().startswith("Sent from this computer\nto bob, carol   today")

    bob.check()
    pump_until(root, lambda: "Lunch at noon" in bob.inbox.content(), what="bob's inbox")
    (lunch,) = bob.inbox.view.messages()
    assert bob.inbox.view.link_index(lunch.id, to_all=True) is None  # others unknown: no Reply all
    link = bob.inbox.view.link_index(lunch.id)
    assert link is not None
    click_link(bob.inbox.text, link)
    assert bob.notebook.select() == str(bob.compose)
    assert (bob.compose.mode, bob.compose.recipients()) == ("one", ["alice"])
    pump_for(root, 0.1)
    assert bob.window.focus_lastfor() is bob.compose.text

    alice.notebook.select(alice.sent_view)
    (sent,) = alice.sent_view.view.messages()
    follow_up = alice.sent_view.view.link_index(sent.id, to_all=True)
    assert follow_up is not None
    click_link(alice.sent_view.view.text, follow_up)
    assert (alice.compose.mode, alice.compose.recipients()) == ("many", ["bob", "carol"])

    bob.search_view.query_var.set("NOON lunch")
    bob.search_view.submit()
    pump_until(root, lambda: "1 message with" in bob.search_view.content(), what="the search")
    assert "Lunch at noon" in bob.search_view.content()
    bob.search_view.query_var.set("dinner")
    bob.search_view.submit()
    pump_until(root, lambda: "Nothing kept" in bob.search_view.content(), what="no match")

    alice.close()  # the Sent view comes back from the archive at the next sign-in
    again = clients(srv, "alice")
    pump_until(root, lambda: "Lunch at noon" in again.sent_view.content(), what="Sent again")


def test_a_new_names_password_is_typed_twice_and_can_be_changed(
    root: Any, servers: Any, clients: Any
) -> None:
    srv = servers(auth="password")
    app = clients(srv, "hannah", password="first", login=False)
    app.login.submit()
    pump_until(root, lambda: app.login.new_name, what="the new-name prompt")
    message = app.login.message
    assert "“hannah” is a new name: choose its password" in str(message.cget("text"))
    assert str(message.cget("style")) == "Muted.TLabel" and app.login.repeat_entry.winfo_ismapped()
    app.login.repeat_var.set("frist")
    app.login.submit()
    assert "differ" in str(message.cget("text")) and app.state == "login"
    app.login.repeat_var.set("first")
    app.login.submit()
    pump_until(root, lambda: app.state == "online", what="hannah to be created")

    dialog = app.open_password_dialog()
    assert dialog is not None
    dialog.old_var.set("wrong")
    dialog.new_var.set("second")
    dialog.repeat_var.set("second")
    dialog.submit()
    pump_until(root, lambda: "wrong" in str(dialog.message.cget("text")), what="the refusal")
    dialog.old_var.set("first")
    dialog.submit()
    pump_until(root, lambda: not dialog.winfo_exists(), what="the dialog to close")
    assert "Password changed" in app.status_text
    app.sign_out()
    assert app.login.password_var.get() == ""  # signing out forgets the password
    assert not app.login.repeat_entry.winfo_ismapped()  # and the name is no longer new
    pump_until(root, lambda: not _online(srv, "hannah"), what="hannah to be gone")
    sc = SyncClient.connect("127.0.0.1", srv.port)
    with pytest.raises(WrongPassword):
        sc.login("hannah", "first")
    assert sc.login("hannah", "second").user == "hannah"
    sc.close()
    pump_until(root, lambda: not _online(srv, "hannah"), what="hannah to be gone again")
    known = clients(srv, "hannah", login=False)
    known.login.submit()  # as `mailslot client --user hannah` does
    pump_until(root, lambda: "protected" in str(known.login.message.cget("text")), what="ask")
    assert str(known.login.message.cget("style")) == "Muted.TLabel"  # asked, not scolded
    assert not known.login.repeat_entry.winfo_ismapped()


def test_small_things_a_newcomer_trips_over(root: Any, servers: Any, clients: Any) -> None:
    srv = servers()
    alone = clients(srv, "alone", login=False)
    alone.window.update()
    assert alone.window.winfo_width() <= 600 and alone.window.winfo_height() <= 500  # a card
    alone.login.submit()
    pump_until(root, lambda: alone.state == "online", what="the login")
    pump_for(root, 0.2)
    assert alone.compose.picker_empty.winfo_ismapped()  # nobody else yet: said so
    assert "Nobody else" in str(alone.compose.picker_empty.cget("text"))

    long_name = "a-very-long-name-of-32-letters-x"
    other = clients(srv, long_name)
    pump_until(root, lambda: not alone.compose.picker_empty.winfo_ismapped(), what="the list")
    pane = other.users_pane
    pump_until(root, lambda: pane.tree.get_children(), what="the users pane")
    pump_for(root, 0.3)
    labels = [str(pane.tree.item(key, "text")) for key in pane.tree.get_children()]
    mine = next(label for label in labels if "(you)" in label)
    assert mine.endswith("…  (you)") and mine.strip().startswith("a-very-long")

    compose = alone.compose
    compose.to_var.set("nobody-here")
    assert not compose.accept_typed()
    said = str(compose.feedback.cget("text"))
    assert "not on the server's list" in said and str(compose.hint.cget("text")) == ""

    compose.to_var.set("select me")
    compose.to_entry.focus_force()
    compose.to_entry.icursor(3)
    compose.to_entry.event_generate("<Control-a>")
    assert compose.to_entry.selection_present()
    assert compose.to_entry.index("sel.first") == 0 and compose.to_entry.index("sel.last") == 9


def test_emoji_show_in_colour_where_an_emoji_font_is_installed(root: Any) -> None:
    """With fonts-noto-color-emoji, Tk's font fallback draws emoji in colour, not as boxes."""
    import tkinter as tk

    fonts = subprocess.run(["fc-list", ":charset=1f44d"], capture_output=True, text=True)
    if not fonts.stdout.strip() or shutil.which("import") is None:
        if os.environ.get("CI"):
            pytest.fail("no emoji font (apt install fonts-noto-color-emoji) or no ImageMagick")
        pytest.skip("no emoji font installed (fonts-noto-color-emoji) or no ImageMagick")
    from mailslot.gui import theme

    top = tk.Toplevel(root)
    try:
        label = tk.Label(top, text="👍", font=theme.font(top, 20), background="white")
        label.pack()
        pump_for(root, 0.3)
        pixels = subprocess.run(
            ["import", "-window", str(label.winfo_id()), "-depth", "8", "txt:-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        top.destroy()
    colours = [
        next((token for token in line.split() if token.startswith("#")), "")
        for line in pixels.splitlines()[1:]
    ]
    coloured = [c for c in colours if _saturated(c)]
    assert len(coloured) > 20, "the emoji drew no coloured pixels"


def _online(server: Any, name: str) -> bool:
    return any(user.online for user in server.snapshot().users if user.name == name)


def _saturated(colour: str) -> bool:
    """Whether an ImageMagick colour ("#RRGGBB" or a name) is far from grey."""
    if not colour.startswith("#") or len(colour) < 7:
        return False
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return max(r, g, b) - min(r, g, b) > 60
