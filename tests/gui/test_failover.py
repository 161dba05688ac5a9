"""The desktop client on a list of servers (issue 11): the first that answers serves, a
dead server's users carry on on the next, and no message shows twice after the move.

Servers here are real `mailslot server` processes: stopping one is a node going away.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from mailslot.client import SyncClient
from mailslot.gui.archive import Archive, archive_path
from tests.conftest import ServerProcess
from tests.gui.conftest import free_port, pump_until


def _node(server_process: Any, tmp_path: Path, name: str, *extra: str) -> ServerProcess:
    node: ServerProcess = server_process("--auth", "none", *extra, data_dir=tmp_path / name)
    return node


def _send(port: int, sender: str, to: str, text: str) -> int:
    sc = SyncClient.connect("127.0.0.1", port)
    try:
        sc.login(sender)
        return sc.send(text, to=[to]).id
    finally:
        sc.close()


def _check(root: Any, app: Any) -> None:
    pump_until(root, lambda: app.inbox.waiting > 0, what="the new-mail badge")
    app.check()
    pump_until(root, lambda: not app.inbox.busy, what="the check")


def test_a_dead_servers_user_carries_on_on_the_next(
    root: Any, clients: Any, server_process: Any, tmp_path: Path
) -> None:
    first = _node(server_process, tmp_path, "a")
    second = _node(server_process, tmp_path, "b")
    servers = f"{first.address}, {second.address}"
    alice = clients(None, "alice", address=servers)
    assert alice.status_text == f"Connected to {first.address} as alice  ·  server 1 of 2"
    alice.compose.set_text("a draft that must survive")

    first.stop(signal.SIGKILL)
    pump_until(root, lambda: alice.state == "reconnecting", what="the loss to show")
    pump_until(root, lambda: alice.state == "online", timeout=15, what="the failover")
    assert alice.status_text == f"Connected to {second.address} as alice  ·  server 2 of 2"
    assert alice.compose.message_text() == "a draft that must survive"
    _send(second.port, "bob", "alice", "hello on the second server")
    _check(root, alice)
    assert "hello on the second server" in alice.inbox.content()

    # The list as typed is what is remembered, so the next start tries the first again.
    assert alice.settings.server == f"{first.address}, {second.address}"


def test_a_server_that_stops_answering_is_left_for_the_next(
    root: Any, clients: Any, server_process: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopped process answers nothing yet resets nothing, like a machine gone from the
    network: the unanswered ping is what tells."""
    from mailslot.gui import client_app

    monkeypatch.setattr(client_app, "PING_EVERY_MS", 200)
    monkeypatch.setattr(client_app, "PING_TIMEOUT", 0.5)
    first = _node(server_process, tmp_path, "a")
    second = _node(server_process, tmp_path, "b")
    alice = clients(None, "alice", address=f"{first.address},{second.address}")
    first.process.send_signal(signal.SIGSTOP)
    try:
        pump_until(root, lambda: alice.state == "reconnecting", what="the silence to count")
        pump_until(root, lambda: alice.state == "online", timeout=15, what="the failover")
        assert alice.connected_to == second.address
    finally:
        first.process.send_signal(signal.SIGCONT)


def test_history_and_no_double_after_a_failover(
    root: Any, clients: Any, server_process: Any, tmp_path: Path
) -> None:
    """Two addresses serving one store, as the nodes of a cluster do: the second is the
    first's data served again from another port once the first is gone."""
    first = _node(server_process, tmp_path, "store")
    later_port = free_port()
    servers = f"{first.address},127.0.0.1:{later_port}"
    # What a node's death between archive and acknowledgement leaves behind: the message
    # is on this computer and still queued on the server.
    sc = SyncClient.connect("127.0.0.1", first.port)
    sc.login("alice")
    _send(first.port, "bob", "alice", "archived, but its ack was lost")
    archive = Archive(archive_path(first.address, "alice", tmp_path / "clientdata"))
    archive.add(sc.fetch())
    archive.close()
    sc.close()

    alice = clients(None, "alice", address=servers)
    pump_until(root, lambda: "ack was lost" in alice.inbox.content(), what="the archive")
    first.stop(signal.SIGKILL)
    pump_until(root, lambda: alice.state == "reconnecting", what="the loss to show")
    _node(server_process, tmp_path, "store", "--port", str(later_port))
    pump_until(root, lambda: alice.state == "online", timeout=15, what="the failover")
    assert alice.connected_to == f"127.0.0.1:{later_port}"
    _check(root, alice)  # the server hands the message out again
    assert alice.inbox.waiting == 0
    assert alice.inbox.content().count("archived, but its ack was lost") == 1

    # Started again while the first server is still down: same archive, same history.
    alice.close()
    again = clients(None, "alice", address=servers)
    assert again.connected_to == f"127.0.0.1:{later_port}"
    pump_until(root, lambda: "ack was lost" in again.inbox.content(), what="the history")
    assert again.inbox.content().count("archived, but its ack was lost") == 1


def test_a_name_still_claimed_on_the_next_server_is_waited_for(
    root: Any, clients: Any, server_process: Any, tmp_path: Path
) -> None:
    """In a cluster the name stays claimed for a while after its server is lost; here the
    claim is a session of that name left open on the next server."""
    first = _node(server_process, tmp_path, "a")
    second = _node(server_process, tmp_path, "b")
    alice = clients(None, "alice", address=f"{first.address},{second.address}")
    claim = SyncClient.connect("127.0.0.1", second.port)
    claim.login("alice")
    first.stop(signal.SIGKILL)
    pump_until(
        root,
        lambda: "Name still in use. Reconnecting in" in alice.status_text,
        what="the claim to be explained",
    )
    assert alice.state == "reconnecting"  # waited for, not sent back to the login window
    claim.close()
    alice.reconnect_button.invoke()
    pump_until(root, lambda: alice.state == "online", what="the reconnect once released")
    assert alice.connected_to == second.address


def test_none_answering_names_each_failure(root: Any, clients: Any) -> None:
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    alice = clients(None, "alice", address=",".join(dead), login=False)
    alice.login.submit()
    pump_until(root, lambda: alice.state == "login" and alice.login.message.cget("text"))
    sentence = alice.login.message.cget("text")
    assert sentence.startswith("None of the 2 servers answered."), sentence
    for address in dead:
        assert f"•  {address}: connection refused\n" in sentence
    assert sentence.endswith("then retry.")


def test_failover_between_two_nodes_on_postgresql(
    root: Any, clients: Any, server_process: Any, tmp_path: Path, postgres_url: str
) -> None:
    a = _node(server_process, tmp_path, "a", "--database", postgres_url, "--node-name", "a")
    b = _node(server_process, tmp_path, "b", "--database", postgres_url, "--node-name", "b")
    alice = clients(None, "alice", address=f"{a.address},{b.address}")
    assert alice.connected_to == a.address
    _send(b.port, "bob", "alice", "sent through b before")
    _check(root, alice)

    a.stop(signal.SIGKILL)  # PostgreSQL drops a's claims with its connection
    pump_until(root, lambda: alice.state == "reconnecting", what="the loss to show")
    pump_until(root, lambda: alice.state == "online", timeout=20, what="the failover to b")
    assert alice.status_text == f"Connected to {b.address} as alice  ·  server 2 of 2"
    _send(b.port, "bob", "alice", "sent through b after")
    _check(root, alice)
    shown = alice.inbox.content()
    assert shown.count("sent through b before") == 1
    assert shown.count("sent through b after") == 1
