"""The screenshot script works end to end (it is what made docs/screenshots/)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def test_screenshots_are_made(display: str, tmp_path: Path) -> None:
    if shutil.which("import") is None:
        pytest.skip("ImageMagick's import is not installed")
    from tests.gui.make_screenshots import SHOTS, make

    paths = make(tmp_path)
    assert [p.stem for p in paths] == list(SHOTS)
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
