"""The README's screenshots are made from the real app (tests/web/make_screenshots.py),
and axe-core finds no serious or critical accessibility problem in any of its scenes."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from tests.web.conftest import PHONE, WebServer
from tests.web.make_screenshots import SHOTS, axe_context, axe_problems, make


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_screenshots_and_accessibility(browser: Any, web_server: WebServer, tmp_path: Path) -> None:
    findings = make(browser, web_server, tmp_path / "shots")
    assert findings == {scene: [] for scene in findings}
    assert set(findings) == {"login", "login, new name", "desktop", "phone", "dark"}
    for name in SHOTS:
        assert (tmp_path / "shots" / name).stat().st_size > 10_000
    assert png_size(tmp_path / "shots" / "web-desktop.png") == (1280, 800)
    width, height = png_size(tmp_path / "shots" / "web-phone.png")
    assert width == PHONE["width"]  # nothing wider than a phone: no sideways scrolling
    assert height > PHONE["height"]


def test_the_accessibility_check_finds_a_planted_problem(
    browser: Any, web_server: WebServer
) -> None:
    context = axe_context(browser, PHONE)
    page = context.new_page()
    page.goto(web_server.url)
    assert axe_problems(page) == []
    page.evaluate("document.querySelector('#login-form').append(document.createElement('input'))")
    assert any(problem.startswith("label (critical)") for problem in axe_problems(page))
    context.close()
