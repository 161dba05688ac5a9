"""Attacks from issue 7, each as a stranger on the network would try it, over real sockets.

Every test here failed on the server before the hardening work; the defect number of the
issue is in each test's name or docstring.
"""

from __future__ import annotations

import contextlib
import json
import logging
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailslot.client import (
    Client,
    PasswordRequired,
    RateLimited,
    UsernameInUse,
    WrongPassword,
)
from mailslot.server import ServerThread
from tests.conftest import ServerFactory, ServerProcess, eventually, eventually_async, run
from tests.test_wire import Raw


def raw_from(port: int, source: str = "127.0.0.1", timeout: float = 2) -> Raw:
    """A hand-typed session from another loopback address (another 'machine')."""
    sock = socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
    )
    raw = Raw.__new__(Raw)
    raw.sock = sock
    raw.file = sock.makefile("rb")
    raw.welcome = raw.read()
    return raw


def hang_up(raw: Raw) -> None:
    raw.file.close()  # the socket stays open while its file object does
    raw.sock.close()


def lines(*frames: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(frame).encode() + b"\n" for frame in frames)


# -- defect 1: invalid UTF-8 ------------------------------------------------------------


def test_1_invalid_utf8_is_malformed_and_earlier_replies_are_not_lost(
    server: ServerThread,
) -> None:
    raw = Raw(server.port)
    raw.send(
        b'{"op":"login","id":1,"user":"alice"}\n'
        b'{"op":"send","id":2,"mode":"one","to":["alice"],"text":"x"}\n'
        b'{"op":"ping","id":3}\n'
        b'{"op":"login","id":5,"user":"\xff"}\n'
    )
    replies = [raw.read_reply() for _ in range(4)]
    assert [r["id"] for r in replies] == [1, 2, 3, 5]
    assert replies[1]["ok"] is True and replies[1]["msg"] >= 1  # the stored send is acknowledged
    assert replies[3]["error"] == "malformed" and "UTF-8" in replies[3]["message"]
    assert raw.request({"op": "ping", "id": 6})["pong"] is True  # the connection goes on


def test_1_invalid_utf8_in_an_ignored_field_is_malformed(server: ServerThread) -> None:
    raw = Raw(server.port)
    raw.send(b'{"op":"ping","id":6,"x":"\xff\xfe"}\n')
    reply = raw.read_reply()
    assert reply["id"] == 6 and reply["error"] == "malformed"
    assert raw.request({"op": "ping", "id": 7})["pong"] is True  # the connection goes on


def test_1_a_frame_too_large_after_good_ones_still_answers_them(
    start_server: ServerFactory,
) -> None:
    server = start_server(max_frame=1024)
    raw = Raw(server.port)
    raw.send(b'{"op":"ping","id":1}\n{"op":"ping","id":2}\n' + b"x" * 2000)  # one segment
    frames = []
    with contextlib.suppress(ConnectionResetError):
        while line := raw.file.readline():
            frames.append(json.loads(line))
    assert [f.get("id") for f in frames[:2]] == [1, 2]
    assert frames[2]["error"] == "too_large"


# -- defect 2: numbers out of range -----------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        {"op": "check", "id": 1, "after": 2**63},
        {"op": "check", "id": 1, "after": -1},
        {"op": "check", "id": 1, "limit": 0},
        {"op": "ack", "id": 1, "ids": [2**64]},
        {"op": "ack", "id": 1, "ids": [-5]},
        {"op": "ack", "id": 1, "ids": list(range(1001))},
        {"op": "hello", "id": 1, "version": 2**70},
    ],
)
def test_2_numbers_out_of_range_are_malformed(server: ServerThread, frame: dict[str, Any]) -> None:
    raw = Raw(server.port)
    raw.request({"op": "login", "id": 0, "user": "alice"})
    reply = raw.request(frame)
    assert reply["id"] == 1 and reply["error"] == "malformed"
    assert raw.request({"op": "check", "id": 2})["ok"] is True


def test_2_an_out_of_range_id_is_malformed_without_an_id(server: ServerThread) -> None:
    raw = Raw(server.port)
    reply = raw.request({"op": "ping", "id": 2**64})
    assert reply["error"] == "malformed" and reply["id"] is None


# -- defect 3: the output bound covers replies ------------------------------------------


def test_3_never_reading_clients_pipelining_large_checks_stay_bounded(
    server_process: Any,
) -> None:
    process: ServerProcess = server_process("--auth", "none", "--no-limits")
    readers = 40
    names = [f"reader{i:02}" for i in range(readers)]

    async def fill() -> None:
        clients = [await Client.connect("127.0.0.1", process.port) for _ in names]
        for client, name in zip(clients, names, strict=True):
            await client.login(name, presence=False)
        sender = await Client.connect("127.0.0.1", process.port)
        await sender.login("sender", presence=False)
        for i in range(200):
            await sender.send(f"{i:04} " + "é" * 995, to=names, many=True)
        for client in [*clients, sender]:
            await client.close()

    run(fill())
    baseline = process.rss_kib()
    check = b'{"op":"check","limit":200}\n' * 150
    sinks = []
    for name in names:
        sink = socket.create_connection(("127.0.0.1", process.port))
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sink.sendall(json.dumps({"op": "login", "user": name, "presence": False}).encode() + b"\n")
        sink.settimeout(2)
        with contextlib.suppress(TimeoutError, BlockingIOError):
            sink.sendall(check)  # may stop when the server stops reading
        sinks.append(sink)
    time.sleep(2)
    grown_mib = (process.rss_kib() - baseline) / 1024
    # before the fix: 1.7 GB for this (the figure)
    assert grown_mib < 200, f"server grew by {grown_mib:.0f} MiB"
    bystander = Raw(process.port)
    assert bystander.request({"op": "ping", "id": 1})["pong"] is True
    for sink in sinks:
        sink.close()

    async def nothing_lost() -> None:
        client = await Client.connect("127.0.0.1", process.port)

        async def logged_in() -> bool:  # once the server has seen the sink hang up
            with contextlib.suppress(UsernameInUse):
                await client.login(names[0])
                return True
            return False

        await eventually_async(logged_in, "the sink's name to be free", timeout=60)
        assert len(await client.fetch()) == 200  # mail stays queued
        await client.close()

    run(nothing_lost())


def test_3_a_check_reply_is_cut_at_a_byte_budget_and_pages_on(server: ServerThread) -> None:
    async def scenario() -> None:
        alice = await Client.connect("127.0.0.1", server.port)
        await alice.login("alice")
        for i in range(200):
            await alice.send(f"{i:04}" + "€" * 996, to=["alice"])
        raw = Raw(server.port)
        await alice.close()
        raw.request({"op": "login", "id": 1, "user": "alice"})
        first = raw.request({"op": "check", "id": 2, "limit": 200})
        assert 0 < len(first["messages"]) < 200 and first["more"] is True
        size = len(json.dumps(first, ensure_ascii=False).encode())
        assert size < 300 * 1024
        hang_up(raw)
        await eventually(lambda: not server.snapshot().users[0].online, "alice to be offline")
        client = await Client.connect("127.0.0.1", server.port)
        await client.login("alice")
        assert len(await client.fetch()) == 200  # the library pages through it
        await client.close()

    run(scenario())


# -- defect 4: anonymous sockets ----------------------------------------------------------


def test_4_a_connection_that_never_logs_in_is_closed_at_the_login_deadline(
    start_server: ServerFactory,
) -> None:
    server = start_server(login_timeout=0.5)
    raw = Raw(server.port)
    raw.request({"op": "ping", "id": 1})  # pings do not extend the deadline
    frames = []
    raw.sock.settimeout(5)
    while line := raw.file.readline():
        frames.append(json.loads(line))
    assert {"event": "closing", "reason": "login_timeout"} in frames


def test_4_idle_time_counts_whole_frames_not_dribbled_bytes(start_server: ServerFactory) -> None:
    server = start_server(idle_timeout=1.5)
    raw = Raw(server.port)
    raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw.request({"op": "login", "id": 1, "user": "dribbler"})
    received = b""
    deadline = time.monotonic() + 8
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        while b"idle" not in received and time.monotonic() < deadline:
            raw.sock.send(b" ")  # one byte of a frame that never ends, every 100 ms
            time.sleep(0.1)
            with contextlib.suppress(BlockingIOError, TimeoutError):
                received += raw.sock.recv(4096, socket.MSG_DONTWAIT)
    assert b'"reason":"idle"' in received


def test_4_one_source_holding_thousands_of_sockets_does_not_lock_others_out(
    start_server: ServerFactory,
) -> None:
    server = start_server(max_anonymous_per_source=32, login_timeout=30)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    attacker: list[socket.socket] = []
    try:
        for _ in range(2000):
            sock = socket.socket()
            sock.bind(("127.0.0.2", 0))
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", server.port))
            attacker.append(sock)
        run(
            eventually(
                lambda: server.server.sessions.anonymous.get("127.0.0.2", 0) >= 32,
                "the attacker's sockets to be accepted",
            )
        )
        time.sleep(0.5)  # time for more to be accepted, were the cap not kept
        assert server.server.sessions.anonymous.get("127.0.0.2", 0) == 32

        async def legit() -> None:
            client = await Client.connect("127.0.0.1", server.port)
            await client.login("legit")
            await client.close()

        run(legit())
        # another connection from the attacker's address is refused with a sentence
        refused = raw_from(server.port, "127.0.0.2")
        assert refused.welcome["error"] == "server_busy"
        assert "have not logged in" in refused.welcome["message"]
    finally:
        for sock in attacker:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- defect 8: throttles by source --------------------------------------------------------


@pytest.fixture
def alice_protected(start_server: ServerFactory) -> Iterator[ServerThread]:
    server = start_server("password", login_failures=3, login_failures_per_source=8)
    raw = Raw(server.port)
    assert raw.request({"op": "login", "id": 1, "user": "alice", "password": "right"})["ok"]
    hang_up(raw)
    run(eventually(lambda: not server.server.hub.claims, "alice to be offline"))
    yield server


def test_8_guesses_from_one_address_do_not_lock_out_the_owner(
    alice_protected: ServerThread,
) -> None:
    guesser = raw_from(alice_protected.port, "127.0.0.3")
    codes = [
        guesser.request({"op": "login", "id": i, "user": "alice", "password": f"guess{i}"})["error"]
        for i in range(5)
    ]
    assert codes == ["wrong_password"] * 3 + ["rate_limited"] * 2
    owner = raw_from(alice_protected.port, "127.0.0.1")
    reply = owner.request({"op": "login", "id": 1, "user": "alice", "password": "right"})
    assert reply["ok"] is True


def test_8_spraying_many_names_from_one_address_is_throttled(start_server: ServerFactory) -> None:
    server = start_server("password", login_failures=3, login_failures_per_source=8)
    setup = Raw(server.port)
    for i in range(10):
        name = f"user{i}"
        setup.request({"op": "login", "id": 1, "user": name, "password": "pw"})
        hang_up(setup)
        run(eventually(lambda: not server.server.hub.claims, f"{name} to be offline"))
        setup = Raw(server.port)
    sprayer = raw_from(server.port, "127.0.0.4")
    codes = [
        sprayer.request({"op": "login", "id": i, "user": f"user{i % 10}", "password": "x"})["error"]
        for i in range(12)
    ]
    assert codes.count("wrong_password") == 8 and codes[8:] == ["rate_limited"] * 4


def test_8_new_names_per_address_are_limited(start_server: ServerFactory) -> None:
    server = start_server(new_users_per_source=3)
    creator = raw_from(server.port, "127.0.0.5")
    codes = []
    for i in range(5):
        reply = creator.request({"op": "login", "id": i, "user": f"new{i}"})
        codes.append(reply.get("error", "ok"))
        if reply["ok"]:
            hang_up(creator)
            creator = raw_from(server.port, "127.0.0.5")
    assert codes == ["ok", "ok", "ok", "rate_limited", "rate_limited"]
    elsewhere = raw_from(server.port, "127.0.0.6")
    assert elsewhere.request({"op": "login", "id": 1, "user": "fresh"})["ok"] is True


def test_8_refusals_are_logged_once_per_source_per_interval(
    alice_protected: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailslot.server")
    guesser = raw_from(alice_protected.port, "127.0.0.7")
    for i in range(20):
        guesser.request({"op": "login", "id": i, "user": "alice", "password": "nope"})
    refused = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(refused) == 1
    alice_protected.server.refusal_log.flush(force=True)
    summaries = [r.getMessage() for r in caplog.records if "more refused logins" in r.getMessage()]
    assert summaries == [
        "19 more refused logins from 127.0.0.7 in the last 60 s"
        " (rate_limited ×17, wrong_password ×2)"
    ]


# -- defect 9: open mode keeps the passwords that exist -----------------------------------


def test_9_open_mode_still_needs_the_password_of_a_protected_name(
    tmp_path: Path, start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "shared"
    first = start_server("password", data_dir=data)
    raw = Raw(first.port)
    raw.request({"op": "login", "id": 1, "user": "alice", "password": "secret"})
    hang_up(raw)
    first.stop()
    caplog.set_level(logging.INFO, logger="mailslot.server")
    server = start_server("none", data_dir=data)
    assert any("1 with a password" in r.getMessage() for r in caplog.records)

    async def scenario() -> None:
        client = await Client.connect("127.0.0.1", server.port)
        with pytest.raises(PasswordRequired):
            await client.login("alice")
        with pytest.raises(WrongPassword):
            await client.login("alice", "guess")
        assert (await client.login("alice", "secret")).user == "alice"
        other = await Client.connect("127.0.0.1", server.port)
        assert (await other.login("bob")).created  # unprotected names need nothing
        await other.close()
        await client.close()

    run(scenario())


# -- issue 8 item 2, server side: first use and changing one's password --------------------


def test_password_required_says_whether_the_name_is_new(start_server: ServerFactory) -> None:
    server = start_server("password")
    raw = Raw(server.port)
    new = raw.request({"op": "login", "id": 1, "user": "carol"})
    assert new["error"] == "password_required" and new["new"] is True
    assert "new name" in new["message"]
    raw.request({"op": "login", "id": 2, "user": "carol", "password": "one"})
    hang_up(raw)
    run(eventually(lambda: not server.server.hub.claims, "carol to be offline"))
    again = Raw(server.port).request({"op": "login", "id": 3, "user": "carol"})
    assert again["error"] == "password_required" and again["new"] is False


def test_a_user_changes_their_password(start_server: ServerFactory) -> None:
    server = start_server("password")

    async def scenario() -> None:
        client = await Client.connect("127.0.0.1", server.port)
        await client.login("dave", "old")
        with pytest.raises(WrongPassword):
            await client.change_password("not-old", "new")
        await client.change_password("old", "new")
        await client.close()
        again = await Client.connect("127.0.0.1", server.port)
        with pytest.raises(WrongPassword):
            await again.login("dave", "old")
        assert (await again.login("dave", "new")).user == "dave"
        await again.close()

    run(scenario())


def test_rate_limited_carries_retry_after(alice_protected: ServerThread) -> None:
    async def scenario() -> None:
        client = await Client.connect("127.0.0.1", alice_protected.port)
        for _ in range(3):
            with pytest.raises(WrongPassword):
                await client.login("alice", "bad")
        with pytest.raises(RateLimited) as refused:
            await client.login("alice", "bad")
        assert 0 < refused.value.retry_after <= 60
        await client.close()

    run(scenario())


# -- defect 7: look-alike names -------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "impostor", "code"),
    [
        ("alice", "\u0430lice", "invalid_username"),  # Cyrillic а among Latin: mixed scripts
        ("alice", "al\u0456c\u0435", "invalid_username"),
        ("alice", "aIice", "confusable_username"),  # capital I for l
        ("Alice", "AIice", "confusable_username"),
        ("ape", "\u0430\u0440\u0435", "confusable_username"),  # all Cyrillic, looks like ape
        ("bob", "\u0412\u041e\u0412", "confusable_username"),
    ],
)
def test_7_a_name_that_looks_like_an_existing_one_is_refused(
    server: ServerThread, owner: str, impostor: str, code: str
) -> None:
    Raw(server.port).request({"op": "login", "id": 1, "user": owner})
    reply = Raw(server.port).request({"op": "login", "id": 2, "user": impostor})
    assert reply["error"] == code, reply
    if code == "confusable_username":
        assert reply["like"] == owner and "looks too much like" in reply["message"]


@pytest.mark.parametrize(
    "name",
    ["b\u03bfb", "alice\u3164", "alice\uffa0", "p\u0430ypal", "zero\u200bwidth"],
)
def test_7_mixed_scripts_and_invisible_characters_are_refused(
    server: ServerThread, name: str
) -> None:
    reply = Raw(server.port).request({"op": "login", "id": 1, "user": name})
    assert reply["error"] == "invalid_username", reply


def test_7_mail_to_a_look_alike_does_not_reach_an_impostor(server: ServerThread) -> None:
    async def scenario() -> None:
        alice = await Client.connect("127.0.0.1", server.port)
        await alice.login("alice")
        bob = await Client.connect("127.0.0.1", server.port)
        await bob.login("bob")
        with pytest.raises(Exception, match="unknown user"):
            await bob.send("for alice", to=["\u0430lice"])
        await alice.close()
        await bob.close()

    run(scenario())


def test_7_two_look_alikes_racing_to_be_created_let_one_in(start_server: ServerFactory) -> None:
    server = start_server("password")
    for attempt in range(5):
        names = [f"mary{attempt}", f"rnary{attempt}", f"MARY{attempt}", f"mаrу{attempt}"]
        peers = [Raw(server.port) for _ in names]
        for peer, name in zip(peers, names, strict=True):
            peer.send(lines({"op": "login", "id": 1, "user": name, "password": "pw"}))
        replies = [peer.read_reply() for peer in peers]
        created = [r for r in replies if r["ok"]]
        refused = {r.get("error") for r in replies if not r["ok"]}
        assert len(created) == 1, replies
        assert refused <= {"confusable_username", "invalid_username", "username_in_use"}
        for peer in peers:
            hang_up(peer)


# -- defect 10: one sender must not stall everyone -----------------------------------------


def test_10_a_bystanders_send_is_committed_before_a_burst_of_broadcasts_ends(
    start_server: ServerFactory,
) -> None:
    server = start_server(new_users_per_source=0, max_anonymous_per_source=0, fanout_per_second=0)

    async def scenario() -> None:
        for start in range(0, 2000, 200):
            clients = [await Client.connect("127.0.0.1", server.port) for _ in range(200)]
            for i, client in enumerate(clients):
                await client.login(f"u{start + i:04}", presence=False)
            for client in clients:
                await client.close()
        burster = Raw(server.port)
        burster.request({"op": "login", "id": 0, "user": "burster", "presence": False})
        burster.sock.settimeout(60)  # 80,000 queue rows take a while
        bystander = await Client.connect("127.0.0.1", server.port)
        await bystander.login("bystander", presence=False)
        burster.send(
            lines(*({"op": "send", "id": i, "mode": "all", "text": f"b{i}"} for i in range(40)))
        )
        mine = await bystander.send("just one", to=["u0001"])
        burst = [burster.read_reply() for _ in range(40)]
        assert all(reply["ok"] for reply in burst)
        # ids are handed out in commit order: the bystander did not wait for the burst
        assert mine.id < max(reply["msg"] for reply in burst)
        await bystander.close()

    run(scenario())


def test_10_each_user_fills_a_bounded_number_of_queue_places_per_second(
    start_server: ServerFactory,
) -> None:
    server = start_server(fanout_per_second=10, fanout_burst=300)

    async def scenario() -> None:
        users = []
        for i in range(51):
            users.append(await Client.connect("127.0.0.1", server.port))
            await users[-1].login(f"p{i:02}", presence=False)
        sender = users[0]
        for _ in range(6):
            assert (await sender.send("to all", everyone=True)).recipients == 50
        with pytest.raises(RateLimited) as refused:
            await sender.send("one too many", everyone=True)
        assert refused.value.retry_after > 1
        await users[1].send("others are not held back", to=["p02"])
        for client in users:
            await client.close()

    run(scenario())
