"""The package as a user installs it: wheel and sdist built from this checkout and
installed into fresh virtual environments, then `mailslot --version` run from there.

Offline: the fresh environments get the dependencies (and the build backend) from
this environment through a .pth file, so only Mailslot itself comes from the
wheel or sdist under test.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

from mailslot import __version__

ROOT = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(
    ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "results", "tests"
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source") / "mailslot"
    shutil.copytree(ROOT, source, ignore=SKIP)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def fresh_venv(path: Path) -> Path:
    venv.create(path, with_pip=False)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def install(python: Path, artifact: Path) -> None:
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"),
            *("--no-index", "--no-deps", "--no-build-isolation", str(artifact)),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.mark.parametrize("kind", ["whl", "tar.gz"])
def test_wheel_and_sdist_install_in_a_fresh_venv(dist: Path, tmp_path: Path, kind: str) -> None:
    [artifact] = dist.glob(f"mailslot-*.{kind}")
    python = fresh_venv(tmp_path / "venv")
    install(python, artifact)
    version = subprocess.run(
        [python.parent / "mailslot", "--version"], capture_output=True, text=True, timeout=60
    )
    assert (version.returncode, version.stdout) == (0, f"mailslot {__version__}\n")
    where = subprocess.run(
        [
            python,
            "-c",
            "import mailslot, mailslot.protocol as p; print(mailslot.__file__);"
            " print(p.name_key('Alice'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert Path(where[0]).is_relative_to(tmp_path / "venv")  # not this checkout's
    assert where[1] == "alice"
    help_text = subprocess.run(
        [python.parent / "mailslot", "server", "--help"], capture_output=True, text=True
    ).stdout
    assert "--http-port" in help_text


def test_metadata_license_and_urls(dist: Path) -> None:
    import zipfile

    [wheel] = dist.glob("mailslot-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(f"mailslot-{__version__}.dist-info/METADATA").decode()
    assert f"mailslot-{__version__}.dist-info/licenses/LICENSE" in names
    static = ROOT / "src" / "mailslot" / "web" / "static"
    assert {f"mailslot/web/static/{path.name}" for path in static.iterdir()} <= set(names)
    assert "License-Expression: MIT" in metadata
    assert "Project-URL: Source, " in metadata
    assert "Author: The Mailslot maintainers" in metadata
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
