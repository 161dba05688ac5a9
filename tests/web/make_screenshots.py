"""Save the README's web client screenshots (docs/screenshots/web-*.png) from the real
app in Debian's Chromium, checking each scene with axe-core on the way.

Usage: python -m tests.web.make_screenshots [OUTPUT_DIR]
test_web_look.py runs it into a temporary directory.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from mailslot.client import SyncClient
from tests.web.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    TIMEOUT_MS,
    WebServer,
    expect,
    sign_in,
)

REPO = Path(__file__).resolve().parents[2]
AXE = Path(__file__).with_name("vendor") / "axe.min.js"
SHOTS = ["web-login.png", "web-desktop.png", "web-phone.png", "web-dark.png"]
SERIOUS = ("serious", "critical")


def axe_problems(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now."""
    result = page.evaluate("async () => await axe.run(document, { resultTypes: ['violations'] })")
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(str(node["target"]) for node in violation["nodes"])
        for violation in result["violations"]
        if violation["impact"] in SERIOUS
    ]


def axe_context(browser: Any, viewport: dict[str, int], scheme: str = "light") -> Any:
    made = browser.new_context(viewport=viewport, color_scheme=scheme, device_scale_factor=1)
    made.set_default_timeout(TIMEOUT_MS)
    # Injected by the browser's debugging protocol, which the page's CSP does not govern.
    made.add_init_script(path=str(AXE))
    return made


def make(browser: Any, server: WebServer, out: Path) -> dict[str, list[str]]:
    """Takes the screenshots into `out`; returns axe's findings by scene."""
    out.mkdir(parents=True, exist_ok=True)
    findings: dict[str, list[str]] = {}
    for name in ("carol", "dave"):
        client = SyncClient.connect("127.0.0.1", server.tcp_port)
        client.login(name, f"{name} pw")
        client.close()

    login = axe_context(browser, {"width": 900, "height": 620})
    page = login.new_page()
    page.goto(server.url)
    findings["login"] = axe_problems(page)
    page.fill("#login-name", "alice")
    page.fill("#login-password", "alice pw")
    page.click("#login-submit")
    expect(page.locator("#confirm-row")).to_be_visible()
    page.fill("#login-confirm", "alice pw")
    findings["login, new name"] = axe_problems(page)
    page.screenshot(path=str(out / "web-login.png"))
    page.click("#login-submit")
    expect(page.locator("#app-view")).to_be_visible()
    login.close()

    bob_context = axe_context(browser, PHONE)
    bob = bob_context.new_page()
    bob.goto(server.url)
    sign_in(bob, "bob", "bob pw")

    carol = SyncClient.connect("127.0.0.1", server.tcp_port)
    carol.login("carol", "carol pw")
    carol.send("Lunch at 12:30? The new place by the river 🍜", to=["alice", "bob"])
    carol.send("Build 4.2 is out — release notes in the wiki.", everyone=True)
    carol.close()

    alice_context = axe_context(browser, DESKTOP)
    alice = alice_context.new_page()
    alice.goto(server.url)
    sign_in(alice, "alice", "alice pw", new=False)
    alice.click("#check")
    expect(alice.locator("#messages li")).to_have_count(2)
    alice.check("input[name=mode][value=one]")
    alice.fill("#to", "bob")
    alice.fill("#text", "Count me in for lunch!")
    alice.click("#send")
    expect(alice.locator("#feedback")).to_contain_text("✓ Sent to bob")
    alice.check("input[name=mode][value=many]")
    for name in ("bob", "carol"):
        alice.fill("#to", name)
        alice.press("#to", "Enter")
    alice.fill("#text", "Shall we book a table for three?")
    expect(bob.locator("#badge")).to_have_text("3")
    findings["desktop"] = axe_problems(alice)
    alice.screenshot(path=str(out / "web-desktop.png"))

    bob.click("#check")
    expect(bob.locator("#messages li")).to_have_count(3)
    bob.click("#people-toggle")
    findings["phone"] = axe_problems(bob)
    bob.screenshot(path=str(out / "web-phone.png"), full_page=True)

    # The same browser, so the same archive: bob at his desk, in the dark.
    bob.set_viewport_size(DESKTOP)
    bob.emulate_media(color_scheme="dark")
    bob.click("#tab-archive")
    bob.fill("#search", "lunch")
    expect(bob.locator("#messages li")).to_have_count(2)
    bob.check("input[name=mode][value=all]")
    bob.fill("#text", "Thanks — see you all at 12:30.")
    findings["dark"] = axe_problems(bob)
    bob.screenshot(path=str(out / "web-dark.png"))
    bob_context.close()
    alice_context.close()
    return findings


def main() -> None:
    from playwright.sync_api import sync_playwright

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "screenshots"
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        server = WebServer(Path(scratch) / "data")
        try:
            findings = make(browser, server, out)
        finally:
            server.stop()
            browser.close()
    for scene, problems in findings.items():
        print(f"{scene}: {'; '.join(problems) or 'no serious or critical axe findings'}")
    print(f"Saved {', '.join(SHOTS)} in {out}")


if __name__ == "__main__":
    main()
