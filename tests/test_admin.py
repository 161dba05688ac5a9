"""`mailslot admin` against a running server process, with clients connected."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mailslot.client import Disconnected, MailslotError
from mailslot.server import ServerThread, StartupError
from tests.conftest import ServerProcess, connect, make_config, run


def admin(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSLOT_")}
    return subprocess.run(
        [sys.executable, "-m", "mailslot", "admin", "--data-dir", str(data_dir), *args],
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def admin_ok(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    done = admin(data_dir, *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def password_server(server_process: Any) -> ServerProcess:
    process: ServerProcess = server_process("--auth", "password")
    return process


def users_by_name(data_dir: Path) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in json.loads(admin_ok(data_dir, "users", "--json"))}


def test_users_and_stats_while_clients_are_connected(password_server: ServerProcess) -> None:
    server = password_server

    async def scenario() -> None:
        alice = await connect(server.port)
        await alice.login("alice", "alice-pw")
        bob = await connect(server.port)
        await bob.login("bob", "bob-pw")
        await alice.send("one", to=["bob"])
        await alice.send("two", to=["bob"])
        await bob.close()
        users = users_by_name(server.data_dir)
        assert set(users) == {"alice", "bob"}
        assert users["alice"]["last_seen"] == "now"
        assert users["bob"]["waiting"] == 2
        assert users["bob"]["protected"] is True
        assert users["bob"]["last_seen"].endswith("Z")
        table = admin_ok(server.data_dir, "users")
        assert table.splitlines()[0].split()[:2] == ["NAME", "CREATED"]
        stats = json.loads(admin_ok(server.data_dir, "stats", "--json"))
        assert (stats["users"], stats["online"], stats["waiting"]) == (2, 1, 2)
        assert "messages waiting:" in admin_ok(server.data_dir, "stats")
        await alice.close()

    run(scenario())
    socket_mode = stat.S_IMODE((server.data_dir / "admin.sock").stat().st_mode)
    assert socket_mode == 0o600


def test_reset_password_from_stdin_while_the_user_is_connected(
    password_server: ServerProcess,
) -> None:
    server = password_server

    async def scenario() -> None:
        alice = await connect(server.port)
        await alice.login("alice", "forgotten")
        out = admin_ok(server.data_dir, "reset-password", "alice", stdin="fresh start\n")
        assert out == "New password set for alice.\n"
        await alice.ping()  # the session that logged in before goes on
        await alice.close()
        again = await connect(server.port)
        with pytest.raises(MailslotError, match="wrong password"):
            await again.login("alice", "forgotten")
        assert (await again.login("alice", "fresh start")).created is False
        await again.close()

    run(scenario())
    log = server.stop()
    assert "admin: reset the password of 'alice'" in log
    assert "fresh start" not in log


def test_delete_user_closes_its_session_and_frees_the_name(password_server: ServerProcess) -> None:
    server = password_server

    async def scenario() -> None:
        alice = await connect(server.port)
        await alice.login("alice", "a")
        bob = await connect(server.port)
        await bob.login("bob", "b")
        await alice.send("to both", to=["alice", "bob"])
        refused = admin(server.data_dir, "delete-user", "bob")
        assert refused.returncode == 2
        assert "--yes" in refused.stderr
        out = admin_ok(server.data_dir, "delete-user", "bob", "--yes")
        assert out == "Deleted bob and 1 message (its session was closed).\n"
        while not isinstance(await asyncio.wait_for(bob.next_event(), 10), Disconnected):
            pass
        assert set(users_by_name(server.data_dir)) == {"alice"}
        with pytest.raises(MailslotError, match="unknown user 'bob'"):
            await alice.send("hello?", to=["bob"])
        newcomer = await connect(server.port)
        assert (await newcomer.login("bob", "another password")).created is True
        [message] = await alice.check()  # the text both got survives for alice
        assert message.text == "to both"
        await newcomer.close()
        await alice.close()
        missing = admin(server.data_dir, "delete-user", "nobody", "--yes")
        assert (missing.returncode, missing.stderr) == (1, "mailslot: there is no user 'nobody'\n")

    run(scenario())
    assert "admin: deleted user 'bob' with 1 waiting messages; closed its session" in server.stop()
    with sqlite3.connect(server.data_dir / "mailslot.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM queue").fetchone() == (0,)


def test_purge_empties_a_queue(password_server: ServerProcess) -> None:
    server = password_server

    async def scenario() -> None:
        alice = await connect(server.port)
        await alice.login("alice", "a")
        bob = await connect(server.port)
        await bob.login("bob", "b")
        for n in range(3):
            await alice.send(f"spam {n}", to=["bob"])
        assert admin_ok(server.data_dir, "purge", "bob") == "Deleted 3 messages waiting for bob.\n"
        assert await bob.check() == []
        assert users_by_name(server.data_dir)["bob"]["waiting"] == 0
        await alice.close()
        await bob.close()

    run(scenario())


def test_backup_while_clients_send(password_server: ServerProcess, tmp_path: Path) -> None:
    server = password_server
    backup = tmp_path / "backup.sqlite3"

    async def scenario() -> None:
        alice = await connect(server.port)
        await alice.login("alice", "a")
        await alice.send("kept", to=["alice"])
        sending = asyncio.ensure_future(
            asyncio.gather(*(alice.send(f"busy {n}", to=["alice"]) for n in range(150)))
        )
        out = await asyncio.to_thread(admin_ok, server.data_dir, "backup", str(backup))
        assert out.startswith(f"Backup written to {backup} (")
        await sending
        exists = admin(server.data_dir, "backup", str(backup))
        assert exists.returncode == 1
        assert "already exists" in exists.stderr
        await alice.close()

    run(scenario())
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    with sqlite3.connect(backup) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT name FROM users").fetchall() == [("alice",)]
        texts = {text for (text,) in db.execute("SELECT text FROM queue")}
        assert "kept" in texts


def test_no_running_server_is_one_sentence(tmp_path: Path) -> None:
    done = admin(tmp_path / "nothing", "users")
    assert done.returncode == 1
    assert done.stderr == (
        f"mailslot: no Mailslot server is running with the data dir {tmp_path / 'nothing'}\n"
    )


def test_a_stale_socket_is_cleared_and_removed_at_stop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "admin.sock").touch()  # left behind by a crash
    server = ServerThread(make_config(data)).start()
    try:
        assert stat.S_ISSOCK((data / "admin.sock").stat().st_mode)
        assert json.loads(admin_ok(data, "stats", "--json"))["users"] == 0
        with pytest.raises(StartupError):
            ServerThread(make_config(data)).start()  # one server per data dir
        assert json.loads(admin_ok(data, "stats", "--json"))["users"] == 0  # still served
    finally:
        server.stop()
    assert not (data / "admin.sock").exists()


def _on_a_terminal(argv: list[str], answers: list[tuple[str, str]]) -> tuple[int, str]:
    """Run argv with a pseudo-terminal as its controlling terminal; answer each prompt
    (a text to wait for, then the line to type); all it printed, and its exit code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSLOT_")}
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the command
        os.execve(sys.executable, [sys.executable, "-m", "mailslot", *argv], env)
    seen = b""
    try:
        for prompt, answer in answers:
            while prompt.encode() not in seen:
                ready, _, _ = select.select([fd], [], [], 30)
                assert ready, f"no prompt {prompt!r} in {seen!r}"
                seen += os.read(fd, 1024)
            seen = seen.replace(prompt.encode(), b"", 1)
            os.write(fd, answer.encode() + b"\n")
        while True:
            ready, _, _ = select.select([fd], [], [], 30)
            assert ready, f"the command did not finish: {seen!r}"
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode()


def test_on_a_terminal_passwords_are_asked_twice_and_deletes_confirmed(
    password_server: ServerProcess,
) -> None:
    server = password_server
    data = str(server.data_dir)

    async def scenario() -> None:
        alice = await connect(server.port)
        await alice.login("alice", "a")
        await alice.close()
        code, out = _on_a_terminal(
            ["admin", "--data-dir", data, "reset-password", "alice"],
            [("New password for alice: ", "typed twice"), ("The same again: ", "typed twice")],
        )
        assert (code, out.strip()) == (0, "New password set for alice.")
        assert "typed twice" not in out  # not echoed
        code, out = _on_a_terminal(
            ["admin", "--data-dir", data, "reset-password", "alice"],
            [("New password for alice: ", "one"), ("The same again: ", "two")],
        )
        assert code == 2
        assert "mailslot: the two passwords differ; nothing changed" in out
        again = await connect(server.port)
        await again.login("alice", "typed twice")
        await again.close()
        code, out = _on_a_terminal(
            ["admin", "--data-dir", data, "delete-user", "alice"],
            [("Delete alice? The name becomes free. [y/N] ", "n")],
        )
        assert (code, out.strip()) == (1, "n\r\nNothing deleted.")
        code, out = _on_a_terminal(
            ["admin", "--data-dir", data, "delete-user", "alice"],
            [("[y/N] ", "y")],
        )
        assert code == 0
        assert "Deleted alice and 0 messages." in out

    run(scenario())
