"""The server over real sockets: logins, names, routing, pushes, limits."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailslot.client import (
    Client,
    MailWaiting,
    NoRecipients,
    NotLoggedIn,
    PasswordRequired,
    RateLimited,
    TextTooLong,
    TooManyRecipients,
    UnknownRecipient,
    UsernameInUse,
    UserNew,
    UserOffline,
    UserOnline,
    WrongPassword,
)
from mailslot.client.errors import EmptyText, InvalidUsername
from mailslot.server import ServerThread
from tests.conftest import ServerFactory, connect, eventually_async, run


async def _event_of(client: Client, kind: type, timeout: float = 5.0) -> object:
    while True:
        event = await asyncio.wait_for(client.next_event(), timeout)
        if isinstance(event, kind):
            return event


def test_three_clients_send_and_check_in_all_three_modes(server: ServerThread) -> None:
    async def scenario() -> None:
        alice, bob, carol = [await connect(server, name) for name in ("alice", "bob", "carol")]
        before = datetime.now(UTC) - timedelta(seconds=1)
        one = await alice.send("just bob", to=["bob"])
        many = await bob.send("alice and carol", to=["alice", "carol"])
        everyone = await carol.send("hello all", everyone=True)
        assert (one.recipients, many.recipients, everyone.recipients) == (1, 2, 2)
        got = {c.user: await c.check() for c in (alice, bob, carol)}
        assert [(m.sender, m.text) for m in got["alice"]] == [
            ("bob", "alice and carol"),
            ("carol", "hello all"),
        ]
        assert [(m.sender, m.text) for m in got["bob"]] == [
            ("alice", "just bob"),
            ("carol", "hello all"),
        ]
        assert [(m.sender, m.text) for m in got["carol"]] == [("bob", "alice and carol")]
        for messages in got.values():
            for message in messages:
                assert before < message.received_at < datetime.now(UTC) + timedelta(seconds=1)
        assert got["bob"][0].received_at == one.at
        for client in (alice, bob, carol):
            assert await client.check() == []  # deleted once acknowledged
            await client.close()

    run(scenario())


def test_two_hundred_concurrent_clients(start_server: ServerFactory) -> None:
    # 200 people behind one address, all at once: lift the per-address caps.
    server = start_server(max_anonymous_per_source=0, new_users_per_source=0)

    async def scenario() -> None:
        clients = await asyncio.gather(*(connect(server, f"user{i:03}") for i in range(200)))
        results = await asyncio.gather(
            *(c.send(f"from {i}", to=[f"user{(i + 1) % 200:03}"]) for i, c in enumerate(clients))
        )
        assert all(r.recipients == 1 for r in results)
        inboxes = await asyncio.gather(*(c.check() for c in clients))
        for i, inbox in enumerate(inboxes):
            assert [(m.sender, m.text) for m in inbox] == [
                (f"user{(i - 1) % 200:03}", f"from {(i - 1) % 200}")
            ]
        users = await clients[0].users()
        assert len(users) == 200 and all(u.online for u in users)
        await asyncio.gather(*(c.close() for c in clients))

    run(scenario())


def test_a_live_name_is_refused_and_the_same_connection_retries(server: ServerThread) -> None:
    async def scenario() -> None:
        erin = await connect(server, "erin")
        other = await connect(server)
        with pytest.raises(UsernameInUse, match="username 'erin' is in use"):
            await other.login("erin")
        with pytest.raises(UsernameInUse):
            await other.login("ERIN")  # one user, whatever the case
        assert (await other.login("erin2")).user == "erin2"
        await erin.close()
        again = await connect(server)
        result = await again.login("Erin")  # free again; same user, original spelling
        assert (result.user, result.created) == ("erin", False)
        names = [u.name for u in await again.users()]
        assert names.count("erin") == 1 and "Erin" not in names
        await again.close()
        await other.close()

    run(scenario())


def test_concurrent_logins_with_one_new_name_let_exactly_one_in(server: ServerThread) -> None:
    async def scenario() -> None:
        clients = await asyncio.gather(*(connect(server) for _ in range(10)))
        outcomes = await asyncio.gather(
            *(c.login("Zed" if i % 2 else "zed") for i, c in enumerate(clients)),
            return_exceptions=True,
        )
        assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
        assert all(isinstance(o, UsernameInUse) for o in outcomes if isinstance(o, BaseException))
        await asyncio.gather(*(c.close() for c in clients))

    run(scenario())


def test_invalid_names_and_unknown_recipients_are_refused(server: ServerThread) -> None:
    async def scenario() -> None:
        alice = await connect(server)
        with pytest.raises(InvalidUsername):
            await alice.login("no spaces please")
        with pytest.raises(NotLoggedIn):
            await alice.send("x", to=["bob"])
        await alice.login("alice")
        bob = await connect(server, "bob")
        with pytest.raises(UnknownRecipient) as error:
            await alice.send("hi", to=["bob", "nobody", "bad name"])
        assert error.value.names == ["nobody", "bad name"]
        assert "nobody" in str(error.value)
        with pytest.raises(TooManyRecipients):
            await alice.send("hi", to=[f"name{i}" for i in range(101)])
        with pytest.raises(NoRecipients):
            await alice.send("hi", to=[])
        with pytest.raises(EmptyText):
            await alice.send("   ", to=["bob"])
        with pytest.raises(TextTooLong):
            await alice.send("x" * 1001, to=["bob"])
        assert await bob.check() == []  # nothing queued by any refused send
        await alice.close()
        await bob.close()

    run(scenario())


def test_everyone_means_every_name_in_the_log_but_the_sender(server: ServerThread) -> None:
    async def scenario() -> None:
        lonely = await connect(server, "first")
        with pytest.raises(NoRecipients):
            await lonely.send("anyone?", everyone=True)
        for name in ("offline1", "offline2"):
            await (await connect(server, name)).close()
        result = await lonely.send("anyone?", everyone=True)
        assert result.recipients == 2
        assert await lonely.check() == []
        reader = await connect(server, "OFFLINE1")
        assert [m.text for m in await reader.check()] == ["anyone?"]
        await reader.close()
        await lonely.close()

    run(scenario())


def test_duplicates_in_to_count_once(server: ServerThread) -> None:
    async def scenario() -> None:
        alice, bob = await connect(server, "alice"), await connect(server, "bob")
        assert (await alice.send("once", to=["bob", "BOB", "ｂｏｂ"])).recipients == 1
        assert [m.text for m in await bob.check()] == ["once"]
        await alice.close()
        await bob.close()

    run(scenario())


def test_pushes_tell_about_mail_and_presence(server: ServerThread) -> None:
    async def scenario() -> None:
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        assert await _event_of(alice, UserNew) == UserNew("bob")
        assert await _event_of(alice, UserOnline) == UserOnline("bob")
        await bob.send("one", to=["alice"])
        await bob.send("two", to=["alice"])
        assert await _event_of(alice, MailWaiting) == MailWaiting(1)
        assert await _event_of(alice, MailWaiting) == MailWaiting(2)
        await bob.close()
        assert await _event_of(alice, UserOffline) == UserOffline("bob")
        await alice.close()
        again = await connect(server)
        await again.login("alice")
        assert await _event_of(again, MailWaiting) == MailWaiting(2)  # told at login
        await again.close()

    run(scenario())


def test_passwords_protect_names(start_server: ServerFactory) -> None:
    server = start_server(auth="password")

    async def scenario() -> None:
        first = await connect(server)
        assert first.server_info.auth == "password"
        with pytest.raises(PasswordRequired):
            await first.login("alice")
        assert (await first.login("alice", "s3cret")).created
        await first.close()
        second = await connect(server)
        with pytest.raises(WrongPassword, match="wrong password for 'alice'"):
            await second.login("Alice", "guess")
        assert (await second.login("ALICE", "s3cret")).user == "alice"
        await second.close()

    run(scenario())
    database = server.config.database_file.read_bytes()
    assert b"s3cret" not in database


def test_wrong_passwords_are_throttled(start_server: ServerFactory) -> None:
    server = start_server(auth="password", login_failures=3)

    async def scenario() -> None:
        setup = await connect(server)
        await setup.login("alice", "right")
        await setup.close()
        attacker = await connect(server)
        for _ in range(3):
            with pytest.raises(WrongPassword):
                await attacker.login("alice", "wrong")
        with pytest.raises(RateLimited) as error:
            await attacker.login("alice", "right")
        assert error.value.retry_after > 0
        await attacker.close()

    run(scenario())


def test_request_rate_is_limited_per_connection(start_server: ServerFactory) -> None:
    server = start_server(rate_per_second=5, rate_burst=10)

    async def scenario() -> None:
        client = await connect(server, "busy")
        outcomes = await asyncio.gather(
            *(client.users() for _ in range(30)), return_exceptions=True
        )
        limited = [o for o in outcomes if isinstance(o, RateLimited)]
        assert 10 <= len(limited) < 30
        await client.ping()  # pings are never limited
        await client.close()

    run(scenario())


def test_connection_limit_refuses_with_server_busy(start_server: ServerFactory) -> None:
    server = start_server(max_connections=2)

    async def scenario() -> None:
        from mailslot.client import ServerBusy

        first, second = await connect(server), await connect(server)
        with pytest.raises(ServerBusy):
            await connect(server)
        await first.close()
        third = None

        async def a_slot_is_free() -> bool:
            nonlocal third
            with contextlib.suppress(ServerBusy):
                third = await connect(server)
            return third is not None

        # the server frees the slot once it has seen the close, a moment later
        await eventually_async(a_slot_is_free, "the closed connection's slot to be free")
        assert third is not None
        await third.close()
        await second.close()

    run(scenario())


def test_idle_connections_are_closed(start_server: ServerFactory) -> None:
    server = start_server(idle_timeout=0.5)

    async def scenario() -> None:
        from mailslot.client import Disconnected

        client = await connect(server, "sleepy")
        event = await _event_of(client, Disconnected, timeout=5)
        assert "idle" in str(event)

    run(scenario())


def test_dashboard_snapshot_and_events(server: ServerThread) -> None:
    feed = server.server.events.subscribe()

    async def scenario() -> None:
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        await alice.send("hi", to=["bob"])
        snapshot = server.snapshot()
        assert [(u.name, u.online, u.waiting) for u in snapshot.users] == [
            ("alice", True, 0),
            ("bob", True, 1),
        ]
        assert (snapshot.online, snapshot.known, snapshot.waiting) == (2, 2, 1)
        await bob.check()
        await alice.close()
        await bob.close()

    run(scenario())
    kinds = []
    while not feed.empty():
        kinds.append(feed.get().kind)
    for kind in ("connected", "user_created", "login", "enqueued", "delivered", "disconnected"):
        assert kind in kinds
    snapshot = server.snapshot()
    assert snapshot.delivered == 1 and snapshot.online == 0
    assert all(u.last_seen is not None for u in snapshot.users)


def test_a_client_may_decline_presence_events_but_still_gets_mail(server: ServerThread) -> None:
    async def scenario() -> None:
        quiet = await Client.connect("127.0.0.1", server.port)
        await quiet.login("quiet", presence=False)
        loud = await connect(server, "loud")
        await loud.send("psst", to=["quiet"])
        await loud.close()
        assert await _event_of(quiet, MailWaiting) == MailWaiting(1)
        await quiet.ping()  # everything pushed before this reply has arrived
        assert all(isinstance(event, MailWaiting) for event in quiet.drain_events())
        await quiet.close()

    run(scenario())


def test_a_name_from_open_mode_takes_its_first_password(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    data = tmp_path / "switched"
    open_mode = start_server(auth="none", data_dir=data)

    async def before() -> None:
        await (await connect(open_mode, "alice")).close()

    run(before())
    open_mode.stop()
    with_passwords = start_server(auth="password", data_dir=data)

    async def after() -> None:
        first = await connect(with_passwords)
        assert not (await first.login("alice", "chosen-now")).created
        await first.close()
        second = await connect(with_passwords)
        with pytest.raises(WrongPassword):
            await second.login("alice", "anything")
        await second.login("alice", "chosen-now")
        await second.close()

    run(after())
