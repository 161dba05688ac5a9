"""The web client in a real browser: signing in, the three send modes across web,
CLI and desktop-library clients, checking mail, presence, limits and shortcuts."""

from __future__ import annotations

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
