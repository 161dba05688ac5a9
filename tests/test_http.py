"""The HTTP side port: /healthz, /readyz and /metrics, scraped and parsed as Prometheus does."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailslot.client import MailslotError
from mailslot.server import ServerThread, StartupError
from mailslot.server.config import startup_failure
from tests.conftest import connect, make_config, run


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    config = replace(make_config(tmp_path / "data", "password", max_connections=3), http_port=0)
    thread = ServerThread(config).start()
    yield thread
    thread.stop()


def get(server: ServerThread, path: str) -> tuple[int, str]:
    assert server.server.operations.http is not None
    port = server.server.operations.http.port
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(server: ServerThread) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = get(server, "/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_health_and_readiness(server: ServerThread) -> None:
    assert get(server, "/healthz") == (200, json.dumps({"status": "ok"}))
    assert get(server, "/readyz") == (200, json.dumps({"status": "ok"}))
    assert get(server, "/nowhere")[0] == 404


def test_readyz_fails_when_the_store_cannot_write(server: ServerThread) -> None:
    async def close_store() -> None:
        await server.server.store.close()

    assert server._loop is not None
    asyncio.run_coroutine_threadsafe(close_store(), server._loop).result(10)
    status, body = get(server, "/readyz")
    assert status == 503
    assert json.loads(body)["problems"] == ["the store cannot write: the store is closed"]


def test_metrics_count_what_happens(server: ServerThread) -> None:
    before = scrape(server)

    async def scenario() -> None:
        alice = await connect(server)
        await alice.login("alice", "a")
        bob = await connect(server)
        await bob.login("bob", "b")
        intruder = await connect(server)
        with pytest.raises(MailslotError):
            await intruder.login("bob", "b")  # bob is logged in already
        with pytest.raises(MailslotError):  # the fourth connection: server busy
            await connect(server)
        await alice.send("one", to=["bob"])
        await alice.send("two", to=["alice", "bob"])
        await alice.send("three", everyone=True)
        with pytest.raises(MailslotError):
            await alice.send("?", to=["nobody"])
        messages = await bob.check()
        assert len(messages) == 3
        scraped = scrape(server)
        assert value(scraped, "mailslot_connections_open") == 3
        assert value(scraped, "mailslot_users_online") == 2
        assert value(scraped, "mailslot_queue_depth") == 1  # alice's copy of "two"
        for client in (alice, bob, intruder):
            await client.close()

    run(scenario())
    after = scrape(server)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("mailslot_logins_ok_total") == 2
    assert grew("mailslot_logins_refused_total", code="username_in_use") == 1
    assert grew("mailslot_connections_refused_total", reason="server_busy") == 1
    assert grew("mailslot_connections_accepted_total") == 3
    assert grew("mailslot_sends_total", mode="one") == 1  # the refused one does not count
    assert grew("mailslot_sends_total", mode="many") == 1
    assert grew("mailslot_sends_total", mode="all") == 1
    assert grew("mailslot_messages_enqueued_total") == 4
    assert grew("mailslot_messages_delivered_total") == 3
    assert grew("mailslot_messages_acked_total") == 3
    assert grew("mailslot_errors_total", code="unknown_recipient") == 1
    assert grew("mailslot_errors_total", code="username_in_use") == 1
    assert value(after, "mailslot_users_known") == 2
    assert value(after, "mailslot_store_commit_seconds_count") >= 5
    assert value(after, "mailslot_store_commit_jobs_bucket", le="+Inf") >= 5
    assert value(after, "mailslot_store_fsyncs_total") >= 5
    assert value(after, "process_resident_memory_bytes") > 0


def test_the_http_port_follows_host_unless_http_host_says_otherwise(tmp_path: Path) -> None:
    config = replace(make_config(tmp_path / "data"), http_port=0)
    assert config.http_host is None
    thread = ServerThread(config).start()
    try:
        assert thread.server.operations.http is not None
        assert get(thread, "/healthz")[0] == 200
    finally:
        thread.stop()


def test_an_http_port_in_use_is_one_sentence(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = replace(make_config(tmp_path / "data"), http_port=port)
        with pytest.raises(StartupError) as raised:
            ServerThread(config).start()
    sentence = startup_failure(raised.value, config)
    assert sentence == (
        f"cannot listen for HTTP on 127.0.0.1:{port}: another program already uses that port"
    )
