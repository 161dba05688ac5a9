"""SyncClient offers Client's requests with the same signatures, as docs/api.md says."""

from __future__ import annotations

import inspect

from mailslot.client import Client, SyncClient

REQUESTS = ("login", "users", "send", "fetch", "ack", "check", "change_password", "ping", "close")


def test_sync_client_requests_have_the_async_clients_signatures() -> None:
    for name in REQUESTS:
        blocking = inspect.signature(getattr(SyncClient, name))
        asynchronous = inspect.signature(getattr(Client, name))
        assert (
            list(blocking.parameters.values())[1:] == list(asynchronous.parameters.values())[1:]
        ), name


def test_connect_takes_the_same_options() -> None:
    assert inspect.signature(SyncClient.connect).parameters.keys() == (
        inspect.signature(Client.connect).parameters.keys()
    )
