"""The `mailslot` command as scripts use it, against a real server process."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import queue
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import pytest

from mailslot.gui.archive import Archive, archive_path
from tests.conftest import ServerProcess, connect, run


def cli_env(server: ServerProcess, user: str | None, password: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSLOT_")}
    env["MAILSLOT_SERVER"] = server.address
    if user is not None:
        env["MAILSLOT_USER"] = user
    if password is not None:
        env["MAILSLOT_PASSWORD"] = password
    return env


def mailslot(
    server: ServerProcess,
    *args: str,
    user: str | None = None,
    password: str | None = None,
    stdin: str | None = None,
    servers: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`servers`: MAILSLOT_SERVER instead of the server's own address."""
    env = cli_env(server, user, password)
    if servers is not None:
        env["MAILSLOT_SERVER"] = servers
    return subprocess.run(
        [sys.executable, "-m", "mailslot", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
    )


class Lines:
    """The lines a running process prints, each waited for with a bound against hangs."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put("")

    def next(self) -> str:
        try:
            return self._lines.get(timeout=30)
        except queue.Empty:
            raise AssertionError("no line printed within 30 s") from None


@contextlib.contextmanager
def watching(server: ServerProcess, *args: str, user: str, password: str) -> Iterator[Lines]:
    """``mailslot watch ARGS`` running as ``user``, once it has said it is watching."""
    watcher = subprocess.Popen(
        [sys.executable, "-m", "mailslot", "watch", *args],
        env=cli_env(server, user, password),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert watcher.stderr is not None and watcher.stdout is not None
        assert "Watching" in Lines(watcher.stderr).next()
        yield Lines(watcher.stdout)
    finally:
        watcher.terminate()
        watcher.wait(10)


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where `check` keeps what it fetched: never the real home directory."""
    data = tmp_path / "client-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    return data


@pytest.fixture
def password_server(server_process: Any) -> ServerProcess:
    process: ServerProcess = server_process("--auth", "password")
    return process


def test_send_and_check_in_all_three_modes(password_server: ServerProcess) -> None:
    server = password_server
    for name in ("alice", "bob", "carol"):
        assert mailslot(server, "users", user=name, password=name).returncode == 0
    sent = mailslot(server, "send", "--to", "bob", "one to one", user="alice", password="alice")
    assert sent.returncode == 0, sent.stderr
    assert "Sent message" in sent.stdout
    assert (
        mailslot(
            server,
            "send",
            "--to",
            "bob",
            "--to",
            "Carol",
            "one to many",
            user="alice",
            password="alice",
        ).returncode
        == 0
    )
    assert (
        mailslot(server, "send", "--all", "to all", user="alice", password="alice").returncode == 0
    )

    checked = mailslot(server, "check", "--json", user="bob", password="bob")
    assert checked.returncode == 0, checked.stderr
    messages = json.loads(checked.stdout)
    assert [(m["sender"], m["text"]) for m in messages] == [
        ("alice", "one to one"),
        ("alice", "one to many"),
        ("alice", "to all"),
    ]
    for message in messages:
        assert isinstance(message["id"], int)
        assert datetime.fromisoformat(message["received_at"]).utcoffset() is not None
    again = mailslot(server, "check", user="bob", password="bob")
    assert again.stdout.strip() == "No messages."
    # kept where the desktop client shows them under "Earlier messages"
    kept = Archive(archive_path(server.address, "bob"))
    assert [m.text for m in kept.load()] == ["to all", "one to many", "one to one"]
    kept.close()

    plain = mailslot(server, "check", user="carol", password="carol")
    assert (
        "from alice" in plain.stdout and "one to many" in plain.stdout and "to all" in plain.stdout
    )
    assert (
        mailslot(server, "check", "--json", user="alice", password="alice").stdout.strip() == "[]"
    )


def test_users_json_lists_the_log_with_online_flags(password_server: ServerProcess) -> None:
    server = password_server
    mailslot(server, "users", user="Zoe", password="z")

    async def while_bob_is_online() -> list[dict[str, Any]]:
        bob = await connect(server.port)
        await bob.login("bob", "b")
        listed = mailslot(server, "users", "--json", user="zoe", password="z")
        await bob.close()
        assert listed.returncode == 0, listed.stderr
        users: list[dict[str, Any]] = json.loads(listed.stdout)
        return users

    assert run(while_bob_is_online()) == [
        {"name": "bob", "online": True},
        {"name": "Zoe", "online": True},
    ]


def test_failures_exit_non_zero_with_one_sentence(password_server: ServerProcess) -> None:
    server = password_server
    mailslot(server, "users", user="alice", password="right")
    unknown = mailslot(server, "send", "--to", "nobody", "hi", user="alice", password="right")
    assert unknown.returncode != 0
    assert "nobody" in unknown.stderr and unknown.stderr.count("\n") == 1
    wrong = mailslot(server, "check", user="alice", password="wrong")
    assert wrong.returncode != 0
    assert wrong.stderr.strip() == "mailslot: wrong password for 'alice'"

    async def while_erin_is_online() -> subprocess.CompletedProcess[str]:
        erin = await connect(server.port)
        await erin.login("erin", "e")
        result = mailslot(server, "check", user="erin", password="e")
        await erin.close()
        return result

    busy = run(while_erin_is_online())
    assert busy.returncode != 0 and busy.stderr.strip() == "mailslot: username 'erin' is in use"
    no_password = mailslot(server, "check", user="alice")
    assert no_password.returncode != 0 and "MAILSLOT_PASSWORD" in no_password.stderr
    unreachable = mailslot(server, "check", "--server", "127.0.0.1:1", user="a", password="a")
    assert unreachable.returncode != 0 and "cannot reach" in unreachable.stderr
    assert "Traceback" not in unknown.stderr + wrong.stderr + busy.stderr + unreachable.stderr


def test_watch_prints_push_events(password_server: ServerProcess) -> None:
    server = password_server
    mailslot(server, "users", user="bob", password="b")
    with watching(server, "--json", user="watcher", password="w") as lines:
        sent = mailslot(server, "send", "--to", "watcher", "psst", user="bob", password="b")
        assert sent.returncode == 0, sent.stderr
        events = [json.loads(lines.next()) for _ in range(3)]
        assert {"event": "mail", "waiting": 1} in events
        assert {"event": "online", "user": "bob"} in events


def test_watch_fetch_prints_and_deletes_mail_as_it_arrives(password_server: ServerProcess) -> None:
    server = password_server
    mailslot(server, "users", user="bob", password="b")
    mailslot(server, "users", user="watcher", password="w")
    mailslot(server, "send", "--to", "watcher", "sent before", user="bob", password="b")
    with watching(server, "--fetch", "--json", user="watcher", password="w") as lines:
        first = json.loads(lines.next())
        assert (first["sender"], first["text"]) == ("bob", "sent before")
        mailslot(server, "send", "--to", "watcher", "sent while watching", user="bob", password="b")
        printed = [json.loads(lines.next()) for _ in range(3)]  # bob online, offline, the mail
        mail = [p for p in printed if "event" not in p]
        assert [(m["sender"], m["text"]) for m in mail] == [("bob", "sent while watching")]
        assert datetime.fromisoformat(mail[0]["received_at"]).utcoffset() is not None
        assert {"event": "mail", "waiting": 1} not in printed
    assert mailslot(server, "check", user="watcher", password="w").stdout == "No messages.\n"
    mailslot(server, "send", "--to", "watcher", "line one\nline two", user="bob", password="b")
    with watching(server, "--fetch", user="watcher", password="w") as lines:
        assert lines.next().endswith("  from bob\n")
        assert [lines.next(), lines.next()] == ["    line one\n", "    line two\n"]


def test_send_reads_standard_input_and_prints_json(password_server: ServerProcess) -> None:
    server = password_server
    mailslot(server, "users", user="bob", password="b")
    dash = mailslot(
        server, "send", "--to", "bob", "-", user="al", password="a", stdin="from a pipe\n"
    )
    assert dash.returncode == 0, dash.stderr
    absent = mailslot(
        server, "send", "--to", "bob", "--json", user="al", password="a", stdin="two\nlines\n"
    )
    assert absent.returncode == 0, absent.stderr
    sent = json.loads(absent.stdout)
    assert set(sent) == {"id", "at", "recipients"} and sent["recipients"] == 1
    assert datetime.fromisoformat(sent["at"]).utcoffset() is not None
    checked = json.loads(mailslot(server, "check", "--json", user="bob", password="b").stdout)
    assert [m["text"] for m in checked] == ["from a pipe", "two\nlines"]
    assert checked[1]["id"] == sent["id"]


def test_help_describes_each_command_and_counts_read_well(password_server: ServerProcess) -> None:
    server = password_server
    for command, summary in (
        ("users", "List every username"),
        ("send", "Send a message."),
        ("check", "Fetch, print and delete"),
        ("watch", "Stay logged in"),
    ):
        page = mailslot(server, command, "--help")
        assert page.returncode == 0 and f"\n\n{summary}" in page.stdout, page.stdout
    assert "default 127.0.0.1:7777" in " ".join(mailslot(server, "check", "--help").stdout.split())
    listed = mailslot(server, "users", user="solo", password="s")
    assert listed.stdout.splitlines()[-1] == "1 user, 1 online"


def test_without_a_display_the_server_runs_headless_and_the_gui_commands_say_why(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mailslot",
                "server",
                "--port",
                "0",
                "--data-dir",
                str(tmp_path),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        for _ in range(200):
            if "Mailslot listening" in log.read_text():
                break
            assert server.poll() is None, log.read_text()
            time.sleep(0.05)
        text = log.read_text()
        assert "No dashboard: no desktop display is available" in text
        assert "Mailslot listening" in text
    finally:
        server.terminate()
        server.wait(10)
    for command in ("client", "demo"):
        result = subprocess.run(
            [sys.executable, "-m", "mailslot", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 2
        assert result.stderr.startswith(f"mailslot: the {command} needs a desktop, but no")


def on_a_terminal(server: ServerProcess, *args: str, answers: list[tuple[str, str | None]]) -> str:
    """Run ``mailslot ARGS`` on a pseudo-terminal, typing each answer once its prompt shows
    (None: only wait for the text); returns everything it printed."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: the terminal is its controlling terminal
        env = cli_env(server, "alice", None)
        os.execve(sys.executable, [sys.executable, "-m", "mailslot", *args], env)
    seen = ""

    def read_until(wanted: str | None) -> None:
        """Read until ``wanted`` is printed, or to the end for None."""
        nonlocal seen
        while wanted is None or wanted not in seen:
            ready, _, _ = select.select([terminal], [], [], 30)
            assert ready, f"no {wanted!r} within 30 s; printed: {seen!r}"
            try:
                chunk = os.read(terminal, 1024)
            except OSError:  # the child has ended
                chunk = b""
            if not chunk and wanted is None:
                return
            assert chunk, f"ended without printing {wanted!r}; printed: {seen!r}"
            seen += chunk.decode()

    try:
        printed = ""
        for prompt, answer in answers:
            read_until(prompt)
            printed += seen[: seen.index(prompt) + len(prompt)]
            seen = seen[seen.index(prompt) + len(prompt) :]
            if answer is not None:
                os.write(terminal, answer.encode() + b"\n")
        read_until(None)
        return printed + seen
    finally:
        os.close(terminal)
        assert os.waitpid(pid, 0)[1] == 0, seen


def test_first_use_of_a_name_asks_for_its_new_password_twice(
    password_server: ServerProcess,
) -> None:
    server = password_server
    on_a_terminal(
        server,
        "users",
        answers=[
            ("alice is a new name: choose its password", None),
            ("New password:", "one"),
            ("New password again:", "typo"),
            ("differ", None),
            ("New password:", "s3cret"),
            ("New password again:", "s3cret"),
        ],
    )
    assert mailslot(server, "check", user="alice", password="s3cret").returncode == 0
    printed = on_a_terminal(server, "check", answers=[("Password for alice:", "s3cret")])
    assert "No messages." in printed and "new name" not in printed


def test_passwd_changes_the_password(password_server: ServerProcess) -> None:
    server = password_server
    mailslot(server, "users", user="alice", password="old")
    changed = mailslot(server, "passwd", user="alice", password="old", stdin="new\n")
    assert changed.returncode == 0, changed.stderr
    assert "changed" in changed.stdout
    assert mailslot(server, "check", user="alice", password="new").returncode == 0
    refused = mailslot(server, "check", user="alice", password="old")
    assert refused.stderr.strip() == "mailslot: wrong password for 'alice'"
    wrong = mailslot(server, "passwd", user="alice", password="old", stdin="newer\n")
    assert wrong.returncode == 1 and "wrong password" in wrong.stderr
    on_a_terminal(
        server,
        "passwd",
        answers=[
            ("Password for alice:", "new"),
            ("New password for alice:", "newest"),
            ("New password for alice again:", "newest"),
        ],
    )
    assert mailslot(server, "check", user="alice", password="newest").returncode == 0


def test_a_greeting_without_the_servers_limits_is_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def greet_without_limits() -> None:
            peer, _ = listener.accept()
            with peer:
                peer.sendall(b'{"event":"welcome","versions":[1],"auth":"none"}\n')
                peer.recv(1024)

        threading.Thread(target=greet_without_limits, daemon=True).start()
        result = subprocess.run(
            [sys.executable, "-m", "mailslot", "check", "--server", f"127.0.0.1:{port}"],
            env={**os.environ, "MAILSLOT_USER": "alice"},
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 1
    assert result.stderr == (
        f"mailslot: 127.0.0.1:{port} does not speak the Mailslot protocol "
        "(the greeting does not state the server's limits)\n"
    )


def test_a_list_of_servers_is_tried_in_order(server_process: Any) -> None:
    """MAILSLOT_SERVER may name several servers (nodes of one service): the first that
    answers is used; when none does, each failure is named."""
    live = server_process("--auth", "none")
    with socket.socket() as closed:  # a port nobody listens on, on this machine
        closed.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{closed.getsockname()[1]}"
    sent = mailslot(
        live,
        "send",
        "--to",
        "alice",
        "via the second",
        user="alice",
        servers=f"{dead},{live.address}",
    )
    assert sent.returncode == 0, sent.stderr
    refused = mailslot(live, "check", user="alice", servers=f"{dead},{dead}")
    assert refused.returncode == 1
    assert refused.stderr.startswith("mailslot: none of the 2 servers answered: "), refused.stderr
    assert refused.stderr.count("connection refused") == 2
