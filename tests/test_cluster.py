"""Cluster mode (issue 11, B11) with real processes: three `mailslot server --headless`
nodes on one real PostgreSQL schema, driven by the client library and the CLI.

Every seed behaviour must hold whichever nodes the users reach; a node killed or cut off
from PostgreSQL under load must lose nothing acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import pytest

from mailslot.client import (
    Client,
    Disconnected,
    Event,
    LoginResult,
    MailWaiting,
    RateLimited,
    UnknownRecipient,
    UsernameInUse,
    UserNew,
    UserOffline,
    UserOnline,
    WrongPassword,
)
from mailslot.server import ServerConfig, ServerThread
from tests.cluster import (
    CALL_TIMEOUT,
    Cluster,
    Ledger,
    Load,
    log_in,
)
from tests.conftest import eventually, eventually_async, run


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:
    """Three nodes on a schema of this test's own."""
    nodes = Cluster(tmp_path, postgres_url)
    try:
        yield nodes
    finally:
        nodes.stop()


async def on(nodes: Cluster, letter: str, user: str) -> Client:
    """``user`` logged in on node ``letter`` alone."""
    client = await Client.connect(*nodes[letter].address)
    await client.login(user)
    return client


async def online_flags(client: Client) -> dict[str, bool]:
    return {user.name: user.online for user in await client.users()}


async def expect_events(client: Client, *wanted: Event) -> None:
    """Wait until every event of ``wanted`` has been pushed to ``client``."""
    seen: list[Event] = []

    async def collect() -> None:
        while not all(event in seen for event in wanted):
            seen.append(await client.next_event())

    try:
        await asyncio.wait_for(collect(), CALL_TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"{client.user} was pushed {seen}, not all of {wanted}") from None


def test_a_second_node_on_one_schema_is_served_not_refused(
    tmp_path: Path, postgres_url: str
) -> None:
    nodes = Cluster(tmp_path, postgres_url, "ab")  # raises with the refusal, if any
    try:

        async def scenario() -> None:
            alice = await on(nodes, "a", "alice")
            bob = await on(nodes, "b", "bob")
            await alice.send("hello from a", to=["bob"])
            assert [m.text for m in await bob.check()] == ["hello from a"]
            await alice.close()
            await bob.close()

        run(scenario())
    finally:
        nodes.stop()


def test_a_name_new_on_one_node_is_at_once_a_recipient_on_the_others(cluster: Cluster) -> None:
    async def scenario() -> None:
        bob = await on(cluster, "b", "bob")
        nina = await on(cluster, "a", "nina")
        # No waiting: b never heard of nina, and must look her up rather than refuse.
        await bob.send("hello nina", to=["nina"])
        omar = await on(cluster, "c", "omar")
        everyone = await bob.send("to all", everyone=True)
        names = await online_flags(bob)
        assert {"bob", "nina", "omar"} <= set(names)
        assert everyone.recipients == len(names) - 1 == 2
        assert [m.text for m in await nina.check()] == ["hello nina", "to all"]
        assert [m.text for m in await omar.check()] == ["to all"]
        for client in (bob, nina, omar):
            await client.close()

    run(scenario())


def test_names_created_at_once_on_two_nodes_are_known_to_all_and_get_their_one_to_all(
    cluster: Cluster,
) -> None:
    """Each name is first used on two nodes at once, so the nodes' inserts wait for each
    other and commit in another order than their ids: every node must know every name
    all the same (one user log, S15) and send its 1-to-all to each (S7)."""

    async def create(number: int, name: str) -> None:
        pair = ("ab", "bc", "ca")[number % 3]
        clients = [await Client.connect(*cluster[letter].address) for letter in pair]
        logins = await asyncio.gather(*(c.login(name) for c in clients), return_exceptions=True)
        assert sorted(type(r).__name__ for r in logins) == ["LoginResult", "UsernameInUse"]
        for client in clients:
            await client.close()

    async def scenario() -> None:
        senders = {letter: await on(cluster, letter, f"sender-{letter}") for letter in "abc"}
        names = [f"new{n}" for n in range(60)]
        await asyncio.gather(*(create(number, name) for number, name in enumerate(names)))
        for letter, sender in senders.items():
            everyone = await sender.send("to all", everyone=True)
            await _lists_all(sender, names)
            assert everyone.recipients == len(names) + 2, f"node {letter}'s 1-to-all"
            await sender.close()

    run(scenario())


def test_one_to_one_many_and_all_across_nodes_checked_on_another_node(
    cluster: Cluster,
) -> None:
    async def scenario() -> None:
        alice = await on(cluster, "a", "alice")
        bob = await on(cluster, "b", "bob")
        carol = await on(cluster, "c", "carol")
        one = await alice.send("one to bob", to=["bob"])
        many = await bob.send("one to alice and carol", to=["alice", "carol"])
        everyone = await carol.send("one to all", everyone=True)
        assert (one.recipients, many.recipients, everyone.recipients) == (1, 2, 2)
        sent = {one.id: one, many.id: many, everyone.id: everyone}
        for client in (alice, bob, carol):
            await client.close()
        expected = {
            "alice": [("bob", "one to alice and carol"), ("carol", "one to all")],
            "bob": [("alice", "one to bob"), ("carol", "one to all")],
            "carol": [("bob", "one to alice and carol")],
        }
        # Each checks on another node than the one it used, then once more on the third:
        # what was acknowledged on one node is gone from all (S21).
        for user, (checking, again) in {"alice": "bc", "bob": "ca", "carol": "ab"}.items():
            client = await log_in(cluster.addresses(checking), user)
            messages = await client.check()
            assert [(m.sender, m.text) for m in messages] == expected[user]
            for message in messages:
                assert message.received_at == sent[message.id].at  # the server's stamp (S12)
            await client.close()
            client = await log_in(cluster.addresses(again), user)
            assert await client.check() == []
            await client.close()

    run(scenario())


def test_users_lists_the_users_of_every_node_with_cluster_wide_online_flags(
    cluster: Cluster,
) -> None:
    async def scenario() -> None:
        dave = await on(cluster, "c", "dave")
        await dave.close()
        users = {"a": "alice", "b": "bob", "c": "carol"}
        clients = {letter: await on(cluster, letter, user) for letter, user in users.items()}
        everyone = {"alice": True, "bob": True, "carol": True, "dave": False}
        for letter, client in clients.items():
            await eventually_async(
                partial(_flags_are, client, everyone), f"the list of users on node {letter}"
            )
        await clients["b"].close()
        for letter in "ac":
            await eventually_async(
                partial(_flags_are, clients[letter], {**everyone, "bob": False}),
                f"bob offline on node {letter}",
            )
        for letter in "ac":
            await clients[letter].close()

    run(scenario())


async def _flags_are(client: Client, expected: dict[str, bool]) -> bool:
    return await online_flags(client) == expected


def test_a_name_logged_in_on_one_node_is_refused_on_the_others(cluster: Cluster) -> None:
    async def scenario() -> None:
        alice = await on(cluster, "a", "alice")
        for letter, spelling in (("b", "alice"), ("c", "ALICE"), ("a", "Alice")):
            second = await Client.connect(*cluster[letter].address)
            try:
                await second.login(spelling)
            except UsernameInUse:
                pass
            else:
                raise AssertionError(f"{spelling} logged in on {letter} while alice is on a")
            # The seed's client asks for another name on the same connection (S4).
            assert (await second.login(f"other-{letter}")).created
            await second.close()
        await alice.close()
        again = await log_in(cluster.addresses("b"), "alice")  # free again once she left a
        await again.close()

    run(scenario())


def test_presence_events_reach_watchers_on_other_nodes(cluster: Cluster) -> None:
    async def scenario() -> None:
        watchers = [await on(cluster, "a", "wendy"), await on(cluster, "c", "walt")]
        for watcher in watchers:
            watcher.drain_events()
        nina = await on(cluster, "b", "nina")
        for watcher in watchers:
            await expect_events(watcher, UserNew("nina"), UserOnline("nina"))
        await nina.close()
        for watcher in watchers:
            await expect_events(watcher, UserOffline("nina"))
        for watcher in watchers:
            await watcher.close()

    run(scenario())


def test_new_mail_is_pushed_to_a_recipient_on_another_node(cluster: Cluster) -> None:
    async def scenario() -> None:
        bob = await on(cluster, "c", "bob")
        alice = await on(cluster, "a", "alice")
        carol = await on(cluster, "b", "carol")
        bob.drain_events()
        await alice.send("from a", to=["bob"])
        await expect_events(bob, MailWaiting(1))
        await carol.send("from b to all", everyone=True)
        await expect_events(bob, MailWaiting(2))
        await bob.close()
        bob = await log_in(cluster.addresses("a"), "bob")
        await expect_events(bob, MailWaiting(2))  # what waits, told on login anywhere
        for client in (alice, bob, carol):
            await client.close()

    run(scenario())


def test_the_dashboard_shows_who_is_online_on_which_node(
    cluster: Cluster, tmp_path: Path, postgres_url: str
) -> None:
    """A fourth node in this process, for its dashboard's snapshot."""
    config = ServerConfig(
        port=0, data_dir=tmp_path / "d", database=postgres_url, node_name="d-dash", auth="none"
    )
    dashboard = ServerThread(config).start()

    def rows() -> dict[str, tuple[bool, str | None]]:
        return {row.name: (row.online, row.node) for row in dashboard.snapshot().users}

    async def shows(expected: dict[str, tuple[bool, str | None]]) -> None:
        try:
            await eventually(lambda: rows() == expected, f"the dashboard showing {expected}")
        except AssertionError as timeout:
            raise AssertionError(f"{timeout}; it shows {rows()}") from None

    async def scenario() -> None:
        dave = await on(cluster, "c", "dave")
        await dave.close()
        alice = await on(cluster, "a", "alice")
        bob = await on(cluster, "b", "bob")
        expected = {
            "alice": (True, cluster["a"].name),
            "bob": (True, cluster["b"].name),
            "dave": (False, None),
        }
        await shows(expected)
        await bob.close()
        await shows({**expected, "bob": (False, None)})
        await alice.close()

    try:
        run(scenario())
    finally:
        dashboard.stop()


def test_the_cli_sends_and_checks_through_a_list_of_nodes(cluster: Cluster, tmp_path: Path) -> None:
    def mailslot(user: str, servers: str, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSLOT_")}
        env.update(
            MAILSLOT_SERVER=servers,
            MAILSLOT_USER=user,
            XDG_DATA_HOME=str(tmp_path / "client-data"),  # never the real home
        )
        finished = subprocess.run(
            [sys.executable, "-m", "mailslot", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert finished.returncode == 0, finished.stderr
        return finished.stdout

    assert "No messages." in mailslot("bob", cluster.server_list("ca"), "check")
    mailslot("alice", cluster.server_list("ab"), "send", "--to", "bob", "through a")
    cluster["a"].process.stop()
    mailslot("alice", cluster.server_list("ab"), "send", "--to", "bob", "a is down: through b")
    checked = json.loads(mailslot("bob", cluster.server_list("ac"), "check", "--json"))
    assert [(m["sender"], m["text"]) for m in checked] == [
        ("alice", "through a"),
        ("alice", "a is down: through b"),
    ]


RACES = 200
RACES_AT_ONCE = 25


def test_two_logins_of_one_name_racing_on_two_nodes_exactly_one_wins(cluster: Cluster) -> None:
    """Half the races are for a name nobody has used (both nodes may create it), half for
    the same name again once the winner has left."""
    pairs = ("ab", "bc", "ca")

    async def race(number: int, name: str) -> list[LoginResult | BaseException]:
        first, second = pairs[number % len(pairs)]
        clients = await asyncio.gather(
            Client.connect(*cluster[first].address), Client.connect(*cluster[second].address)
        )
        try:
            return await asyncio.wait_for(
                asyncio.gather(*(c.login(name) for c in clients), return_exceptions=True),
                CALL_TIMEOUT,
            )
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    async def scenario() -> None:
        names = [f"racer{n}" for n in range(RACES // 2)]
        observer = await Client.connect(*cluster["c"].address)
        await observer.login("observer", presence=False)  # 400 logins are not its business
        for rematch in (False, True):
            if rematch:
                await _lists_all(observer, names)
                await eventually_async(
                    partial(_all_offline, observer, names), "every racer to have left"
                )
            outcomes: list[tuple[str, list[LoginResult | BaseException]]] = []
            for start in range(0, len(names), RACES_AT_ONCE):
                batch = names[start : start + RACES_AT_ONCE]
                results = await asyncio.gather(
                    *(race(start + i + rematch, name) for i, name in enumerate(batch))
                )
                outcomes += zip(batch, results, strict=True)
            wrong = [
                (name, result)
                for name, result in outcomes
                if sorted(type(r).__name__ for r in result) != ["LoginResult", "UsernameInUse"]
            ]
            assert not wrong, (
                f"{len(wrong)} of {len(outcomes)} {'re' if rematch else ''}matches without"
                f" exactly one winner: {wrong[:5]}"
            )
            # The first race may be won by the node that did not create the name; the
            # second finds it made.
            winners = [r for _, result in outcomes for r in result if isinstance(r, LoginResult)]
            created = [r.user for r in winners if r.created]
            assert not (rematch and created), f"created again: {created[:5]}"
        listed = [user.name for user in await observer.users()]
        assert sorted(n for n in listed if n.startswith("racer")) == sorted(names)  # once each
        await observer.close()

    run(scenario())


async def _lists_all(client: Client, names: Sequence[str]) -> None:
    """Wait until ``client``'s list of users has every name of ``names``."""

    async def complete() -> bool:
        return set(names) <= {user.name for user in await client.users()}

    try:
        await eventually_async(complete, f"{client.user}'s list of users to have them all")
    except AssertionError:
        listed = {user.name for user in await client.users()}
        lacking = sorted(set(names) - listed)
        raise AssertionError(f"{client.user}'s list of users lacks {lacking}") from None


async def _all_offline(client: Client, names: Sequence[str]) -> bool:
    flags = await online_flags(client)
    return not any(flags.get(name, True) for name in names)


async def _spread_load(load: Load, cluster: Cluster) -> dict[str, str]:
    """Three recipients and six senders, so that each node is the first choice of one
    recipient and two senders; {name: its list of nodes}."""
    orders = ("abc", "bca", "cab")
    recipients = {f"r{i}": orders[i] for i in range(3)}
    senders = {f"s{i}": orders[i % 3] for i in range(6)}
    for name, order in recipients.items():
        load.add_recipient(name, cluster.addresses(order))
    # Senders start once every recipient has a queue, so none is an unknown name.
    await load.until(lambda: all(load.ledger.logins[n] for n in recipients), "recipients in")
    for name, order in senders.items():
        load.add_sender(name, cluster.addresses(order), sorted(recipients))
    return {**recipients, **senders}


def _more_sent(ledger: Ledger, count: int) -> bool:
    return len(ledger.sent) >= count


def test_a_node_killed_under_load_loses_nothing_and_its_clients_fail_over(
    cluster: Cluster,
) -> None:
    async def scenario() -> None:
        idle, gone = await on(cluster, "a", "idle"), await on(cluster, "a", "gone")
        watcher = await on(cluster, "b", "watcher")
        async with Load() as load:
            ledger = load.ledger
            lists = await _spread_load(load, cluster)
            await load.until(partial(_more_sent, ledger, 300), "300 sends acknowledged")
            on_a = {name for name, order in lists.items() if order[0] == "a"}
            before = set(ledger.sent)
            killed_at = time.monotonic()
            cluster.kill("a")
            # The names a's idle users held are free on another node, and shown offline.
            again = await log_in(cluster.addresses("b"), "idle")
            free_after = time.monotonic() - killed_at
            await eventually_async(
                partial(_all_offline, watcher, ["gone"]), "a's users shown offline on b"
            )
            print(
                f"after the kill, a's idle user logged in on b in {free_after:.3f} s;"
                f" another was shown offline there in {time.monotonic() - killed_at:.3f} s"
            )
            await load.until(
                lambda: all(ledger.logins[n][-1] > killed_at for n in on_a),
                f"{sorted(on_a)} logged in again on another node",
            )
            await load.until(partial(_more_sent, ledger, len(before) + 300), "300 more sends")
            senders_after = {ledger.sent[i][0] for i in ledger.sent.keys() - before}
            assert {n for n in on_a if n.startswith("s")} <= senders_after
            await eventually(lambda: idle.closed and gone.closed, "connections to a closed")
            await load.finish()
        ledger.check()
        assert any(line.split(":")[0] in on_a for line in ledger.disruptions), (
            "no client on the killed node noticed"
        )
        for client in (again, watcher):
            await client.close()

    run(scenario())


def test_postgresql_backends_terminated_under_load(cluster: Cluster) -> None:
    async def scenario() -> None:
        async with Load() as load:
            ledger = load.ledger
            await _spread_load(load, cluster)
            for cut in ("before the first cut", "between the cuts", "after the cuts"):
                more = partial(_more_sent, ledger, len(ledger.sent) + 200)
                await load.until(more, f"200 sends acknowledged {cut}")
                if cut != "after the cuts":
                    terminated = await cluster.terminate_backends()
                    assert terminated >= len(cluster.nodes), "a node without a backend"
            await load.finish()
        ledger.check()
        noticed = len(ledger.disruptions)  # closed sessions: each node lost its claims
        assert noticed, "no client noticed that the nodes lost PostgreSQL"
        # Every node serves again on its own: a login, a send and a check on each.
        for letter in cluster.nodes:
            reader = await log_in(cluster.addresses(letter), f"reader-{letter}")
            writer = await log_in(cluster.addresses(letter), f"writer-{letter}")
            await writer.send("still here", to=[f"reader-{letter}"])
            assert [m.text for m in await reader.check()] == ["still here"]
            for client in (reader, writer):
                await client.close()
        await eventually_async(
            partial(_has_backends, cluster), "a PostgreSQL backend for each node again"
        )

    run(scenario())


async def _has_backends(cluster: Cluster) -> bool:
    return len(await cluster.backends()) >= len(cluster.nodes)


def test_a_password_changed_or_a_user_deleted_on_one_node_holds_on_every_node(
    cluster: Cluster,
) -> None:
    """Nodes keep the users they know in memory: a new password set on node a must be
    the one node b asks for, and a user deleted with `mailslot admin` on node a must be
    signed out on node b and unknown on node c."""

    async def new_password() -> None:
        alice = await Client.connect(*cluster["a"].address)
        await alice.login("alice", "first-pw")
        await alice.change_password("first-pw", "second-pw")
        await alice.close()

        async def logs_in_on_b(password: str) -> bool:
            client = await Client.connect(*cluster["b"].address)
            try:
                await client.login("alice", password)
                return True
            except WrongPassword:
                return False
            finally:
                await client.close()

        async def b_takes_the_new_password() -> bool:
            try:
                return await logs_in_on_b("second-pw")
            except UsernameInUse:  # a frees alice's name a round trip after she left
                return False

        # The notice travels after the commit: b may need a moment to hear it.
        await eventually_async(b_takes_the_new_password, "b to take the new password")
        assert not await logs_in_on_b("first-pw")

    run(new_password())

    async def deleted() -> None:
        bob = await on(cluster, "b", "bob")
        carol = await on(cluster, "c", "carol")
        admin = subprocess.run(
            [
                sys.executable,
                "-m",
                "mailslot",
                "admin",
                "--data-dir",
                str(cluster["a"].process.data_dir),
                "delete-user",
                "bob",
                "--yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert admin.returncode == 0, admin.stderr
        assert await call_for_event(bob) == Disconnected("the server's operator deleted this user")
        with pytest.raises(UnknownRecipient):
            await carol.send("still there?", to=["bob"])
        await carol.close()

    async def call_for_event(client: Client) -> Event:
        while True:
            event = await asyncio.wait_for(client.next_event(), CALL_TIMEOUT)
            if isinstance(event, Disconnected):
                return event

    run(deleted())


def test_a_password_guesser_gains_nothing_by_spreading_over_nodes(cluster: Cluster) -> None:
    """Five wrong passwords for one name from one address, spread over the three nodes,
    throttle that name on every node: the sixth try is refused even with the right
    password, on a node that saw only one of the five."""

    async def scenario() -> None:
        alice = await on(cluster, "a", "alice")
        await alice.change_password("", "the-right-one")
        await alice.close()

        async def attempt(letter: str, password: str) -> None:
            client = await Client.connect(*cluster[letter].address)
            try:
                await client.login("alice", password)
            finally:
                await client.close()

        for letter in "aabbc":
            with pytest.raises(WrongPassword):
                await attempt(letter, "a-guess")
        await asyncio.sleep(0.5)  # the notices of the last failures travel after them
        with pytest.raises(RateLimited):
            await attempt("c", "the-right-one")

    run(scenario())
