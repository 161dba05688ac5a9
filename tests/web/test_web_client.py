"""The web client in a real browser: signing in, the three send modes across web,
CLI and desktop-library clients, checking mail, presence, limits and shortcuts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailslot.client import SyncClient, WrongPassword
from tests.web.conftest import WebServer, expect, open_page, sign_in


def inbox_texts(page: Any) -> list[str]:
    return page.locator("#messages li[data-kind=in] .text").all_inner_texts()  # type: ignore[no-any-return]


def test_a_new_name_has_its_password_asked_twice(web_server: WebServer, new_context: Any) -> None:
    page = open_page(new_context(), web_server)
    page.fill("#login-name", "alice")
    page.fill("#login-password", "secret one")
    page.click("#login-submit")
    expect(page.locator("#login-confirm")).to_be_visible()
    expect(page.locator("#login-intro")).to_contain_text("“alice” is new here")
    page.fill("#login-confirm", "secret two")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text("The two passwords differ. Type them again.")
    page.fill("#login-confirm", "secret one")
    page.click("#login-submit")
    expect(page.locator("#me")).to_have_text("alice")

    expect(page.locator("#messages")).to_be_empty()
    page.click("#logout")
    expect(page.locator("#login-view")).to_be_visible()

    # The browser set the password: other clients need it now.
    client = SyncClient.connect("127.0.0.1", web_server.tcp_port)
    with pytest.raises(WrongPassword):
        client.login("alice", "secret two")
    assert client.login("ALICE", "secret one").user == "alice"
    client.close()

    page.fill("#login-name", "alice")
    page.fill("#login-password", "not it")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text(
        "Wrong password for “alice”. Please try again."
    )
    expect(page.locator("#confirm-row")).to_be_hidden()
    page.fill("#login-password", "secret one")
    page.press("#login-password", "Enter")
    expect(page.locator("#me")).to_have_text("alice")


def test_a_second_login_of_the_same_name_is_refused(
    web_server: WebServer, new_context: Any
) -> None:
    first = open_page(new_context(), web_server)
    sign_in(first, "alice", "pw")
    second = open_page(new_context(), web_server)
    sign_in_attempt = second.locator("#login-error")
    second.fill("#login-name", "alice")
    second.fill("#login-password", "pw")
    second.click("#login-submit")
    expect(sign_in_attempt).to_contain_text("is in use by someone connected right now")
    expect(second.locator("#app-view")).to_be_hidden()
    expect(first.locator("#connection")).to_have_attribute("data-state", "online")


def write(page: Any, mode: str, names: list[str], text: str) -> None:
    page.check(f"input[name=mode][value={mode}]")
    for name in names:
        page.fill("#to", name)
        page.press("#to", "Enter")
    page.fill("#text", text)
    page.click("#send")
    expect(page.locator("#feedback")).to_contain_text("✓ Sent to")


def check(page: Any) -> None:
    page.click("#tab-inbox")
    page.click("#check")
    expect(page.locator("#badge")).to_be_hidden()
    expect(page.locator("#announcer")).to_contain_text("in the inbox")


def test_all_three_modes_between_browsers_cli_and_desktop_library(
    web_server: WebServer, new_context: Any
) -> None:
    assert web_server.cli("users", "--user", "carol", password="carol pw").returncode == 0
    dave = SyncClient.connect("127.0.0.1", web_server.tcp_port)
    dave.login("dave", "dave pw")
    alice = open_page(new_context(), web_server)
    sign_in(alice, "alice", "alice pw")
    bob = open_page(new_context(), web_server)
    sign_in(bob, "bob", "bob pw")
    person = alice.locator("#people-list button[data-name=bob]")
    expect(person).to_contain_text("online")
    expect(alice.locator("#people-list button[data-name=carol]")).to_contain_text("offline")
    expect(alice.locator("#people-list button[data-name=dave]")).to_contain_text("online")

    write(alice, "one", ["bob"], "one: alice to bob")
    write(alice, "many", ["bob", "Carol"], "many: alice to bob and carol")
    expect(alice.locator("#feedback")).to_contain_text("bob, carol (2 people)")
    write(bob, "all", [], "all: bob to everyone")
    expect(bob.locator("#feedback")).to_contain_text("everyone (3 people)")
    cli = web_server.cli(
        "send", "--user", "carol", "--to", "alice", "one: carol to alice", password="carol pw"
    )
    assert cli.returncode == 0, cli.stderr
    cli = web_server.cli(
        "send", "--user", "carol", "--all", "all: carol to everyone", password="carol pw"
    )
    assert cli.returncode == 0, cli.stderr
    dave.send("many: dave to alice and bob", to=["alice", "bob"])
    dave.send("one: dave to alice", to=["alice"])

    expect(alice.locator("#badge")).to_have_text("5")
    expect(alice).to_have_title("(5) Mailslot")
    check(alice)
    assert sorted(inbox_texts(alice)) == sorted(
        [
            "all: bob to everyone",
            "one: carol to alice",
            "all: carol to everyone",
            "many: dave to alice and bob",
            "one: dave to alice",
        ]
    )
    expect(alice).to_have_title("Mailslot")
    check(bob)
    assert sorted(inbox_texts(bob)) == sorted(
        [
            "one: alice to bob",
            "many: alice to bob and carol",
            "all: carol to everyone",
            "many: dave to alice and bob",
        ]
    )
    first = bob.locator("#messages li").last
    expect(first.locator(".who")).to_have_text("From alice")

    carol = web_server.cli("check", "--user", "carol", "--json", password="carol pw")
    assert carol.returncode == 0, carol.stderr
    assert "many: alice to bob and carol" in carol.stdout
    assert "all: bob to everyone" in carol.stdout
    assert sorted(m.text for m in dave.check()) == [
        "all: bob to everyone",
        "all: carol to everyone",
    ]
    dave.close()
    expect(person).to_contain_text("online")
    expect(alice.locator("#people-list button[data-name=dave]")).to_contain_text("offline")

    alice.click("#tab-sent")
    expect(alice.locator("#messages li .who")).to_have_text(["To bob, carol", "To bob"])
    alice.press("body", "/")
    alice.fill("#search", "DAVE alice")
    expect(alice.locator("#messages li")).to_have_count(2)


def test_mail_for_an_offline_browser_user_arrives_on_check(
    web_server: WebServer, new_context: Any
) -> None:
    context = new_context()
    bob = open_page(context, web_server)
    sign_in(bob, "bob", "bob pw")
    bob.click("#logout")
    expect(bob.locator("#login-view")).to_be_visible()
    bob.close()
    alice = open_page(new_context(), web_server)
    sign_in(alice, "alice", "alice pw")
    expect(alice.locator("#people-list button[data-name=bob]")).to_contain_text("offline")
    write(alice, "one", ["bob"], "while you were away")
    write(alice, "all", [], "to everyone, bob included")

    bob = open_page(context, web_server)
    sign_in(bob, "bob", "bob pw", new=False)
    expect(bob.locator("#badge")).to_have_text("2")
    expect(bob.locator("#waiting")).to_have_text("2 waiting on the server.")
    assert inbox_texts(bob) == []
    bob.press("body", "c")
    expect(bob.locator("#messages li[data-kind=in] .text")).to_have_text(
        ["to everyone, bob included", "while you were away"]
    )
    expect(bob.locator("#messages li.new")).to_have_count(2)
    expect(bob.locator("#badge")).to_be_hidden()
    expect(bob.locator("#announcer")).to_have_text("2 new messages in the inbox.")

    # Acknowledged only after they were stored: the server has nothing left, and a
    # reload shows them from IndexedDB.
    client = SyncClient.connect("127.0.0.1", web_server.tcp_port)
    client.login("carol", "carol pw")
    client.close()
    bob.reload()
    sign_in(bob, "bob", "bob pw", new=False)
    expect(bob.locator("#messages li[data-kind=in]")).to_have_count(2)
    expect(bob.locator("#badge")).to_be_hidden()


def test_a_server_restart_loses_nothing_and_shows_nothing_twice(
    web_server: WebServer, new_context: Any
) -> None:
    drop_next_ack = {"armed": False}

    def route(ws: Any) -> None:
        server = ws.connect_to_server()

        def to_server(message: str | bytes) -> None:
            if drop_next_ack["armed"] and '"op": "ack"' in str(message).replace('":"', '": "'):
                # The connection dies after the messages were stored, before the ack.
                drop_next_ack["armed"] = False
                server.close()
                ws.close()
                return
            server.send(message)

        ws.on_message(to_server)

    context = new_context()
    bob = context.new_page()
    bob.route_web_socket("**/ws", route)
    bob.goto(web_server.url)
    sign_in(bob, "bob", "bob pw")
    sent = web_server.cli("send", "--user", "carol", "--to", "bob", "first", password="carol pw")
    assert sent.returncode == 0, sent.stderr

    drop_next_ack["armed"] = True
    bob.click("#check")
    expect(bob.locator("#connection")).not_to_have_attribute("data-state", "online")
    expect(bob.locator("#connection")).to_have_attribute("data-state", "online")
    expect(bob.locator("#badge")).to_have_text("1")  # not acknowledged, so delivered again
    expect(bob.locator("#messages li[data-kind=in] .text")).to_have_text(["first"])

    web_server.stop()
    expect(bob.locator("#connection-text")).to_contain_text("Reconnecting in")
    expect(bob.locator("#retry")).to_be_visible()
    web_server.start_again()
    expect(bob.locator("#connection")).to_have_attribute("data-state", "online")
    expect(bob.locator("#badge")).to_have_text("1")
    sent = web_server.cli("send", "--user", "carol", "--to", "bob", "second", password="carol pw")
    assert sent.returncode == 0, sent.stderr
    expect(bob.locator("#badge")).to_have_text("2")
    bob.click("#check")
    expect(bob.locator("#badge")).to_be_hidden()
    expect(bob.locator("#messages li[data-kind=in] .text")).to_have_text(["second", "first"])
    write(bob, "one", ["carol"], "after the restart")
    expect(bob.locator("#connection")).to_have_attribute("data-state", "online")


def test_a_deleted_name_is_signed_out_with_the_reason(
    web_server: WebServer, new_context: Any
) -> None:
    page = open_page(new_context(), web_server)
    sign_in(page, "bob", "pw")
    deleted = web_server.cli(
        "admin",
        "--data-dir",
        str(web_server.config.data_dir),
        "delete-user",
        "--yes",
        "bob",
        password="",
    )
    assert deleted.returncode == 0, deleted.stderr
    expect(page.locator("#login-view")).to_be_visible()
    expect(page.locator("#login-error")).to_have_text(
        "The server's operator deleted this name; it is free to be taken again."
    )


def test_a_name_gone_while_the_server_was_down_is_not_created_again(
    web_server: WebServer, new_context: Any, tmp_path: Path
) -> None:
    page = open_page(new_context(), web_server)
    sign_in(page, "bob", "pw")
    web_server.stop()
    web_server.start_again(data_dir=tmp_path / "from-before-bob")
    expect(page.locator("#login-error")).to_have_text(
        "Signed out: the name “bob” no longer exists on this server."
    )
    client = SyncClient.connect("127.0.0.1", web_server.tcp_port)
    client.login("carol", "pw")
    assert [user.name for user in client.users()] == ["carol"]
    client.close()


def test_a_long_queue_is_fetched_in_batches_and_the_list_stays_short(
    web_server: WebServer, new_context: Any
) -> None:
    page = open_page(new_context(), web_server)
    sign_in(page, "alice", "pw")
    for sender in ("bob", "carol", "dave"):  # each within one connection's request burst
        client = SyncClient.connect("127.0.0.1", web_server.tcp_port)
        client.login(sender, "pw")
        for n in range(170):
            client.send(f"{sender} {n:03d}", to=["alice"])
        client.close()
    expect(page.locator("#badge")).to_have_text("510")
    page.click("#check")
    expect(page.locator("#announcer")).to_have_text("510 new messages in the inbox.")
    expect(page.locator("#messages li")).to_have_count(500)
    expect(page.locator("#list-empty")).to_have_text(
        "The newest 500 of 510 are shown; Search finds any of them."
    )
    expect(page.locator("#messages li .text").last).to_have_text("bob 010")
    page.click("#tab-archive")
    page.fill("#search", "bob 005")  # among the oldest ten, not drawn in the inbox
    expect(page.locator("#messages li .text")).to_have_text(["bob 005"])
