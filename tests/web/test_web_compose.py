"""Composing in the browser: the recipient rules and the character limit from the
server's welcome, presence and the people filter, keyboard shortcuts, phone width."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailslot.client import SyncClient
from tests.web.conftest import PHONE, WebServer, expect, open_page, sign_in


@pytest.fixture
def small_server(tmp_path: Path) -> Any:
    server = WebServer(tmp_path / "data", max_text=20, max_recipients=2)
    yield server
    server.stop()


def test_recipient_rules_and_the_servers_character_limit(
    small_server: WebServer, new_context: Any
) -> None:
    page = open_page(new_context(), small_server)
    sign_in(page, "alice", "pw")
    for name in ("bob", "carol", "dave"):
        client = SyncClient.connect("127.0.0.1", small_server.tcp_port)
        client.login(name, "pw")
        client.close()
    expect(page.locator("#people-list button[data-name=dave]")).to_be_visible()
    counter, hint, send = page.locator("#counter"), page.locator("#hint"), page.locator("#send")

    expect(counter).to_have_text("0 / 20 characters")
    expect(hint).to_have_text("Pick the person to write to.")
    expect(send).to_have_attribute("aria-disabled", "true")
    page.fill("#to", "nobody")
    expect(hint).to_have_text("No one called “nobody” has used this server yet.")
    page.fill("#to", "BOB")
    expect(page.locator("#to-summary")).to_have_text("To: bob")
    expect(hint).to_have_text("Write a message.")
    page.fill("#text", "🙂" * 21)  # characters, not UTF-16 units
    expect(counter).to_have_text("21 / 20 characters")
    expect(counter).to_have_class("error")
    expect(hint).to_have_text("The message is 1 character over the server's limit of 20.")
    page.click("#send", force=True)  # aria-disabled: it can be pressed, and it says why not
    expect(page.locator("#feedback")).to_have_text(
        "The message is 1 character over the server's limit of 20."
    )
    page.fill("#text", "🙂" * 20)
    expect(hint).to_have_text("Ready to send.")
    expect(send).to_have_attribute("aria-disabled", "false")

    page.check("input[name=mode][value=many]")
    for name in ("bob", "carol", "dave"):
        page.fill("#to", name)
        page.press("#to", "Enter")
    expect(page.locator("#chips button")).to_have_text(["bob ×", "carol ×", "dave ×"])
    expect(hint).to_have_text("At most 2 recipients per message; 3 picked.")
    page.click("#chips button[data-name=dave]")
    expect(hint).to_have_text("Ready to send.")
    page.click("#send")
    expect(page.locator("#feedback")).to_contain_text("✓ Sent to bob, carol (2 people)")
    expect(page.locator("#text")).to_have_value("")

    page.check("input[name=mode][value=all]")
    expect(page.locator("#to-row")).to_be_hidden()
    expect(page.locator("#to-summary")).to_have_text("To: everyone else on this server (3 people)")
    page.fill("#text", "hello all")
    page.press("#text", "Control+Enter")
    expect(page.locator("#feedback")).to_contain_text("✓ Sent to everyone (3 people)")


def test_presence_and_the_people_filter(web_server: WebServer, new_context: Any) -> None:
    alice = open_page(new_context(), web_server)
    sign_in(alice, "alice", "pw")
    expect(alice.locator("#people-count")).to_have_text("1 of 1 online")
    bob = open_page(new_context(), web_server)
    sign_in(bob, "bob", "pw")
    row = alice.locator("#people-list button[data-name=bob]")
    expect(row).to_contain_text("online")  # new_user, then online
    expect(row.locator(".dot")).to_have_class("dot on")
    expect(alice.locator("#people-count")).to_have_text("2 of 2 online")
    bob.click("#logout")
    expect(row).to_contain_text("offline")
    expect(row.locator(".dot")).to_have_class("dot off")
    alice.fill("#people-filter", "BO")
    expect(alice.locator("#people-list button")).to_have_count(1)
    alice.fill("#people-filter", "zz")
    expect(alice.locator("#people-list")).to_have_text("Nobody matches the filter.")
    alice.fill("#people-filter", "")
    row.click()
    expect(alice.locator("#to-summary")).to_have_text("To: bob")
    expect(alice.locator("#text")).to_be_focused()


def test_keyboard_shortcuts(web_server: WebServer, new_context: Any) -> None:
    page = open_page(new_context(), web_server)
    sign_in(page, "alice", "pw")
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()
    expect(page.locator("#tab-archive")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Escape")
    page.keyboard.press("s")
    expect(page.locator("#tab-sent")).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-archive")).to_be_focused()
    page.keyboard.press("i")
    expect(page.locator("#tab-inbox")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("n")
    expect(page.locator("#to")).to_be_focused()
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    expect(page.locator("#text")).to_be_focused()
    page.keyboard.type("a note to myself")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#feedback")).to_contain_text("✓ Sent to alice")
    page.keyboard.press("Escape")
    expect(page.locator("#badge")).to_have_text("1")
    page.keyboard.press("c")
    expect(page.locator("#messages li[data-kind=in] .text")).to_have_text(["a note to myself"])
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()
    page.click("#help-button")
    page.click("#help button")
    expect(page.locator("#help")).to_be_hidden()

    page.keyboard.press("n")
    page.keyboard.type("alice")
    page.click("#logout")
    sign_in(page, "bob", "pw")
    expect(page.locator("#to")).to_have_value("")  # nothing of alice's stays for bob


def test_usable_at_phone_width(web_server: WebServer, new_context: Any) -> None:
    bob = open_page(new_context(), web_server)
    sign_in(bob, "bob", "pw")
    page = open_page(new_context(viewport=PHONE, is_mobile=True, has_touch=True), web_server)
    sign_in(page, "alice", "pw")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    expect(page.locator("#people-list")).to_be_hidden()
    page.click("#people-toggle")
    page.locator("#people-list button[data-name=bob]").tap()
    expect(page.locator("#people-list")).to_be_hidden()  # out of the way again
    expect(page.locator("#to-summary")).to_have_text("To: bob")
    page.fill("#text", "from my phone")
    page.locator("#send").tap()
    expect(page.locator("#feedback")).to_contain_text("✓ Sent to bob")
    bob.click("#check")
    expect(bob.locator("#messages li[data-kind=in] .text")).to_have_text(["from my phone"])
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
