"""The data directory under attack, through `mailslot server --headless` as a real process:
every refusal is one sentence on stderr and exit status 1, never a traceback."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import stat
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme

from mailslot.server import ServerThread
from mailslot.server.config import StartupError
from mailslot.server.datadir import LOCK_NAME, MARKER_NAME
from tests.conftest import ServerProcess, connect, make_config, run, server_command, tmpfs

StartServer = Callable[..., ServerProcess]
NO_FILE_PERMISSION_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def refusal(data_dir: Path, *extra: str, prefix: list[str] | None = None) -> str:
    """Start a server that must refuse; the sentence it printed."""
    finished = subprocess.run(
        [*(prefix or []), *server_command(data_dir, *extra)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert finished.returncode == 1, finished.stderr
    assert "Traceback" not in finished.stderr, finished.stderr
    last = finished.stderr.strip().splitlines()[-1]
    assert last.startswith("mailslot: "), finished.stderr
    return last.removeprefix("mailslot: ")


def needs(tool: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs {tool} for this test")
        pytest.skip(f"{tool} is not installed")


def with_mail(server: ServerProcess) -> None:
    async def scenario() -> None:
        for name in ("alice", "bob", "carol"):
            await (await connect(server.port, name)).close()
        alice = await connect(server.port, "alice")
        for number in range(150):
            await alice.send(f"message {number}", to=["bob"])
        await alice.close()

    run(scenario())


# -- one server per directory ----------------------------------------------------------


def test_a_second_server_on_the_same_directory_is_refused(
    tmp_path: Path, server_process: StartServer
) -> None:
    first = server_process()
    sentence = refusal(tmp_path / "data")
    assert sentence == (
        f"another Mailslot server (pid {first.process.pid}) is using the data directory"
        f" {tmp_path / 'data'}; stop it first, or give this one another --data-dir"
    )
    assert first.process.poll() is None  # the first one goes on
    first.stop()
    server_process()  # and once it stopped, the directory is free again


# -- lost or damaged databases ---------------------------------------------------------


@pytest.mark.parametrize("loss", ["emptied", "deleted"])
def test_a_directory_that_lost_its_database_refuses_to_start(
    tmp_path: Path, server_process: StartServer, loss: str
) -> None:
    data = tmp_path / "data"
    server = server_process("--auth", "none")
    with_mail(server)
    server.stop()
    database = data / "mailslot.sqlite3"
    for leftover in data.glob("mailslot.sqlite3*"):
        leftover.unlink()
    if loss == "emptied":
        database.touch()
    lost = "is empty (0 bytes)" if loss == "emptied" else "is missing"
    assert refusal(data) == (
        f"the data directory {data} holds Mailslot data, but its database mailslot.sqlite3"
        f" {lost}; restore it from a backup, or move the directory aside to start afresh"
    )


def test_a_new_directory_starts_and_is_marked(tmp_path: Path, server_process: StartServer) -> None:
    server_process().stop()
    assert (tmp_path / "data" / MARKER_NAME).is_file()


def test_another_database_put_in_place_of_the_directorys_own_refuses_to_start(
    tmp_path: Path, server_process: StartServer
) -> None:
    """An empty but valid Mailslot database in place of the real one would start empty."""
    data, other = tmp_path / "data", tmp_path / "other"
    server = server_process("--auth", "none")
    with_mail(server)
    server.stop()
    server_process(data_dir=other).stop()  # a fresh, empty database elsewhere
    for leftover in data.glob("mailslot.sqlite3*"):
        leftover.unlink()
    (other / "mailslot.sqlite3").rename(data / "mailslot.sqlite3")
    sentence = refusal(data)
    assert sentence.startswith(
        f"the database {data / 'mailslot.sqlite3'} is not the one this data directory was"
        " created with"
    ), sentence


def test_a_marker_from_before_database_ids_gets_one(
    tmp_path: Path, server_process: StartServer
) -> None:
    server_process().stop()
    marker = tmp_path / "data" / MARKER_NAME
    marker.write_text("a Mailslot server's data directory\n")  # as older servers wrote it
    server_process().stop()
    assert marker.read_text().splitlines()[1].startswith("database ")


def test_a_damaged_database_refuses_to_start(tmp_path: Path, server_process: StartServer) -> None:
    data = tmp_path / "data"
    server = server_process("--auth", "none")
    with_mail(server)
    server.stop()
    database = data / "mailslot.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with database.open("r+b") as file:
        file.seek(4096 * 3)
        file.write(b"\x00\x13" * 2048)
    sentence = refusal(data)
    assert sentence.startswith(f"the database {database} is damaged")
    assert sentence.endswith("; restore it from a backup before starting the server")


# -- paths that cannot hold data -------------------------------------------------------


def test_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_text("not a directory")
    assert refusal(path) == f"the data directory {path} is a file, not a directory"


def test_a_data_dir_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "data"
    assert refusal(path) == (
        f"cannot create the data directory {path}: part of the path is a file, not a directory"
    )


def test_a_data_dir_in_proc() -> None:
    assert refusal(Path("/proc/mailslot")) == (
        "the data directory /proc/mailslot is inside /proc, which cannot hold data;"
        " choose a directory on a disk"
    )


def test_an_unwritable_data_dir(tmp_path: Path) -> None:
    needs("setpriv")
    path = tmp_path / "data"
    path.mkdir(mode=0o500)
    assert refusal(path, prefix=NO_FILE_PERMISSION_OVERRIDE) == (
        f"the data directory {path} is not writable by this user"
    )


def test_missing_parents_the_user_cannot_create(tmp_path: Path) -> None:
    needs("setpriv")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    path = locked / "a" / "data"
    assert refusal(path, prefix=NO_FILE_PERMISSION_OVERRIDE) == (
        f"cannot create the data directory {path}: permission denied"
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "size=4m") as disk:
        yield disk


def test_a_read_only_file_system(small_disk: Path, server_process: StartServer) -> None:
    data = small_disk / "data"
    server_process(data_dir=data).stop()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    assert refusal(data) == f"the data directory {data} is on a read-only file system"
    assert refusal(small_disk / "new") == (
        f"cannot create the data directory {small_disk / 'new'}: the file system is read-only"
    )


def test_a_port_in_use_is_one_sentence_and_leaves_the_directory_free(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sentence = refusal(tmp_path / "data", "--port", str(port))
        assert sentence == (
            f"cannot listen on 127.0.0.1:{port}: another program already uses that port"
        )
        config = replace(make_config(tmp_path / "data"), port=port)
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}"):
            ServerThread(config).start()
    ServerThread(make_config(tmp_path / "data")).start().stop()  # in the same process


# -- TLS files -------------------------------------------------------------------------


def test_a_tls_key_that_does_not_match_the_certificate(tmp_path: Path) -> None:
    authority = trustme.CA()
    cert, other = authority.issue_cert("127.0.0.1"), authority.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    other.private_key_pem.write_to_path(str(key_path))
    sentence = refusal(tmp_path / "data", "--tls-cert", str(cert_path), "--tls-key", str(key_path))
    assert sentence == f"the TLS key {key_path} does not match the certificate {cert_path}"
    assert not (tmp_path / "data").exists()  # refused before touching the data


def test_a_tls_certificate_that_is_not_pem(tmp_path: Path) -> None:
    authority = trustme.CA()
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_text("not a certificate\n")
    authority.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(key_path))
    sentence = refusal(tmp_path / "data", "--tls-cert", str(cert_path), "--tls-key", str(key_path))
    assert sentence.startswith(
        f"cannot load the TLS certificate {cert_path} and key {key_path}: they must be PEM files"
    )


# -- private files ---------------------------------------------------------------------


def modes(data: Path) -> dict[str, int]:
    return {
        path.name: stat.S_IMODE(path.stat().st_mode) for path in [data, *sorted(data.iterdir())]
    }


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_data_files_are_private_whatever_the_umask(
    tmp_path: Path, server_process: StartServer, umask: int
) -> None:
    data = tmp_path / "data"
    previous = os.umask(umask)
    try:
        server = server_process("--auth", "none")
    finally:
        os.umask(previous)
    with_mail(server)
    running = modes(data)
    server.stop()
    expected_files = {"mailslot.sqlite3", "mailslot.sqlite3-wal", "mailslot.sqlite3-shm"}
    assert expected_files | {LOCK_NAME, MARKER_NAME} <= set(running)
    assert running == {name: 0o700 if name == "data" else 0o600 for name in running}


def test_wider_modes_are_tightened_at_start(tmp_path: Path, server_process: StartServer) -> None:
    data = tmp_path / "data"
    server_process().stop()
    data.chmod(0o755)
    (data / "mailslot.sqlite3").chmod(0o644)
    log = server_process().stop()
    assert set(modes(data).values()) == {0o700, 0o600}
    assert modes(data)["data"] == 0o700
    assert f"{data} was open to other users (mode 0755); now 0700" in log
    assert f"{data / 'mailslot.sqlite3'} was open to other users (mode 0644); now 0600" in log
