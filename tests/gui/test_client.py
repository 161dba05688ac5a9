"""The client window against a real server (S1–S13, B4, B5)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mailslot.client import SyncClient
from mailslot.gui.archive import Archive, archive_path
from tests.gui.conftest import free_port, pump_for, pump_until


def _message(app: Any) -> str:
    return str(app.login.message.cget("text"))


def test_login_name_in_use_then_another_name(root: Any, servers: Any, clients: Any) -> None:
    srv = servers()
    clients(srv, "alice")
    second = clients(srv, "Alice", login=False)
    assert not second.login.password_visible or second.login.auth is None
    second.login.submit()
    pump_until(root, lambda: "in use" in _message(second), what="the name-in-use sentence")
    assert second.state == "login"  # still on the login window, no restart
    assert second.login.user_entry.selection_present()  # the name is selected for retyping
    assert not second.login.password_visible  # open mode: no password asked
    second.login.user_var.set("alice2")
    second.login.submit()
    pump_until(root, lambda: second.state == "online", what="the second login")
    assert second.status_text == f"Connected to 127.0.0.1:{srv.port} as alice2"


def test_wrong_password_and_password_prompt(root: Any, servers: Any, clients: Any) -> None:
    srv = servers(auth="password")
    first = clients(srv, "dave", password="s3cret")
    first.close()
    app = clients(srv, "dave", login=False)
    app.login.submit()  # no password typed: the window asks for one
    pump_until(root, lambda: "password" in _message(app).lower(), what="the password prompt")
    assert app.login.password_visible and app.state == "login"
    app.login.password_var.set("wrong")
    app.login.submit()
    pump_until(root, lambda: "Wrong password" in _message(app), what="the wrong-password error")
    assert app.state == "login"
    app.login.password_var.set("s3cret")
    app.login.submit()
    pump_until(root, lambda: app.state == "online", what="login with the right password")


def test_invalid_name_is_explained(root: Any, servers: Any, clients: Any) -> None:
    srv = servers()
    app = clients(srv, "no spaces!", login=False)
    app.login.submit()
    pump_for(root, 0.1)
    assert "letters, digits" in _message(app)
    assert app.state == "login"


def test_unreachable_server_then_retry(root: Any, servers: Any, clients: Any) -> None:
    port = free_port()
    app = clients(None, "erin", login=False, address=f"127.0.0.1:{port}")
    app.login.submit()
    pump_until(
        root, lambda: "nothing is listening there" in _message(app), what="the unreachable error"
    )
    assert app.login.retry_button.winfo_manager()  # a Retry button is offered
    servers(port=port)
    app.login.retry_button.invoke()
    pump_until(root, lambda: app.state == "online", what="the retry to succeed")


def test_server_address_is_remembered(root: Any, servers: Any, clients: Any) -> None:
    srv = servers()
    app = clients(srv, "frank", remember=True)
    pump_for(root, 0.2)
    settings = Path(os.environ["XDG_CONFIG_HOME"]) / "mailslot" / "client.json"
    pump_until(root, settings.exists, what="the settings file")
    assert json.loads(settings.read_text())["server"] == f"127.0.0.1:{srv.port}"
    app.close()
    again = clients(None, login=False, remember=True)
    assert again.login.server_var.get() == f"127.0.0.1:{srv.port}"
    assert again.login.user_var.get() == "frank"


def _send(root: Any, app: Any, mode: str, names: list[str], text: str) -> str:
    compose = app.compose
    compose.set_mode(mode)
    for name in names:
        compose.to_var.set(name)
        assert compose.accept_typed(), compose.feedback.cget("text")
    compose.set_text(text)
    pump_for(root, 0.05)
    assert "disabled" not in compose.send_button.state(), compose.hint.cget("text")
    compose.send_button.invoke()
    pump_until(root, lambda: not compose.sending, what=f"the {mode} send to finish")
    return str(compose.feedback.cget("text"))


def test_send_in_three_modes_and_badges_follow(root: Any, servers: Any, clients: Any) -> None:
    srv = servers()
    alice, bob, carol = (clients(srv, n) for n in ("alice", "bob", "carol"))
    pump_until(root, lambda: len(alice.compose.tree.get_children()) == 2, what="alice's list")

    assert "Sent to bob" in _send(root, alice, "one", ["bob"], "one to one")
    pump_until(root, lambda: bob.inbox.waiting == 1, what="bob's badge to show 1")
    assert alice.compose.message_text() == "" and alice.compose.selected_names() == []

    feedback = _send(root, alice, "many", ["bob", "CAROL"], "one to many")
    assert "Sent to bob, carol" in feedback
    pump_until(
        root,
        lambda: bob.inbox.waiting == 2 and carol.inbox.waiting == 1,
        what="badges after the 1-to-n send",
    )

    assert "Sent to everyone (2 people)" in _send(root, alice, "all", [], "one to all")
    pump_until(
        root,
        lambda: bob.inbox.waiting == 3 and carol.inbox.waiting == 2,
        what="badges after the 1-to-all send",
    )
    assert bob.inbox.badge.cget("text") == "3"
    assert "Inbox (3)" in bob.notebook.tab(bob.inbox, "text")
    assert (
        str(alice.compose.tree.cget("selectmode")) == "none"
        or "disabled" in alice.compose.tree.state()
    )

    # Ctrl+Enter sends too.
    alice.compose.set_mode("one")
    alice.compose.pick("carol")
    alice.compose.set_text("keyboard send")
    alice.compose.text.focus_force()
    alice.compose.text.event_generate("<Control-Return>")
    pump_until(
        root,
        lambda: "Sent to carol" in str(alice.compose.feedback.cget("text")),
        what="the Ctrl+Enter send",
    )


def test_unknown_typed_name_is_rejected(root: Any, servers: Any, clients: Any) -> None:
    srv = servers()
    alice = clients(srv, "alice")
    clients(srv, "bob")
    pump_until(root, lambda: len(alice.compose.tree.get_children()) == 1, what="alice's list")
    compose = alice.compose
    compose.to_var.set("zed")
    assert not compose.accept_typed()
    assert "not on the server's list" in str(compose.feedback.cget("text"))
    compose.set_text("hello")
    assert "disabled" in compose.send_button.state()
    assert alice.roster.completions("B") == ["bob"]
    compose.to_var.set("Bob")
    assert compose.accept_typed()
    assert compose.selected_names() == ["bob"]
    assert "disabled" not in compose.send_button.state()
    # Over the limit: the counter turns red and Send is disabled.
    compose.set_text("x" * 1001)
    assert "1,001 / 1,000" in str(compose.counter.cget("text"))
    assert "disabled" in compose.send_button.state()


def test_check_shows_sender_time_text_and_empty_notice(
    root: Any, servers: Any, clients: Any, tmp_path: Path
) -> None:
    srv = servers()
    bob = clients(srv, "bob")
    long_word = "W" * 400
    with _Sender(srv.port) as sc:
        sc.login("alice")
        sc.send("first message", to=["bob"])
        result = sc.send(f"second: Привет 你好 😀 {long_word}", to=["bob"])
    pump_until(root, lambda: bob.inbox.waiting == 2, what="bob's badge")
    bob.inbox.check_button.invoke()
    pump_until(root, lambda: "second:" in bob.inbox.content(), what="the fetched messages")
    content = bob.inbox.content()
    assert "alice" in content and "first message" in content and "😀" in content
    stamp = result.at.astimezone().strftime("%H:%M:%S")
    assert stamp in content  # the server's reception time, in local time
    assert bob.inbox.first_visible_line().startswith("New messages")
    assert content.index("second:") < content.index("first message")  # newest on top
    pump_until(root, lambda: bob.inbox.waiting == 0, what="the badge to clear")
    path = archive_path(f"127.0.0.1:{srv.port}", "bob", tmp_path / "clientdata")
    pump_for(root, 0.2)
    assert Archive(path).count() == 2  # archived before the ack (B5)
    bob.inbox.check_button.invoke()
    pump_until(
        root,
        lambda: "No new messages" in str(bob.inbox.notice.cget("text")),
        what="the empty-queue notice",
    )
    # The archive is shown again, separately, at the next login.
    bob.close()
    again = clients(srv, "bob")
    pump_until(root, lambda: "first message" in again.inbox.content(), what="the archive")
    text = again.inbox.content()
    assert "Earlier messages, kept on this computer (2)" in text
    assert text.index("Earlier messages") < text.index("first message")


class _Sender:
    """A plain library client used as the other party."""

    def __init__(self, port: int) -> None:
        self.sc = SyncClient.connect("127.0.0.1", port)

    def __enter__(self) -> SyncClient:
        return self.sc

    def __exit__(self, *exc: object) -> None:
        self.sc.close()


def test_users_pane_follows_presence(root: Any, servers: Any, clients: Any) -> None:
    srv = servers()
    alice = clients(srv, "alice")
    bob = clients(srv, "bob")
    pane = alice.users_pane
    pump_until(root, lambda: pane.is_marked_online("bob"), what="bob online in alice's pane")
    bob.close()
    pump_until(root, lambda: not pane.is_marked_online("bob"), what="bob offline")
    assert "bob" in pane.shown_names()  # the log is cumulative
    with _Sender(srv.port) as sc:
        sc.login("zoë")
        pump_until(root, lambda: pane.is_marked_online("zoë"), what="a new user to appear")
    pane.set_filter("zo")
    assert pane.shown_names() == ["zoë"]


def test_connection_loss_and_reconnect_keeps_draft(root: Any, servers: Any, clients: Any) -> None:
    srv = servers(name="srv")
    port = srv.port
    alice = clients(srv, "alice")
    alice.compose.set_text("a draft that must survive")
    srv.stop()
    pump_until(root, lambda: alice.state == "reconnecting", what="the loss to show")
    assert "Disconnected. Reconnecting" in alice.status_text
    assert "disabled" in alice.compose.send_button.state()
    servers(port=port, name="srv")  # same data, same port
    pump_until(root, lambda: alice.state == "online", timeout=15, what="the reconnect")
    assert alice.status_text == f"Connected to 127.0.0.1:{port} as alice"
    assert alice.compose.message_text() == "a draft that must survive"


def test_holds_up_with_many_users_and_a_big_archive(
    root: Any, servers: Any, clients: Any, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from mailslot.gui.archive import ArchivedMessage

    srv = servers()
    path = archive_path(f"127.0.0.1:{srv.port}", "alice", tmp_path / "clientdata")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    Archive(path).add(
        ArchivedMessage(
            i, f"user{i % 50}", start + timedelta(minutes=i), f"message {i} " + "🙂" * (i % 5)
        )
        for i in range(1, 5001)
    )
    alice = clients(srv, "alice")
    pump_until(
        root,
        lambda: "message 1 " in alice.inbox.content(),
        timeout=20,
        what="5,000 archived messages",
    )
    people = [(f"user{i:04d}", i % 3 == 0) for i in range(1000)] + [("alice", True)]
    alice.roster.replace(people)
    alice.users_pane.render()
    alice.compose.render()
    root.update()
    assert len(alice.users_pane.tree.get_children()) == 1001
