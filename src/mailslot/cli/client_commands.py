"""The scriptable subcommands: users, send, check, watch (B6)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime

from mailslot.cli.common import (
    add_connection_options,
    password,
    server_address,
    tls_context,
    username,
)
from mailslot.client import (
    Client,
    Disconnected,
    Event,
    MailWaiting,
    Message,
    UserNew,
    UserOffline,
    UserOnline,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = subparsers.add_parser("users", help="list every username the server has seen")
    add_connection_options(users)
    users.add_argument("--json", action="store_true", help="print JSON")
    users.set_defaults(run=lambda args: _session(args, _users))

    send = subparsers.add_parser("send", help="send a message")
    add_connection_options(send)
    who = send.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--to", action="append", metavar="NAME", help="a recipient (repeat for several)"
    )
    who.add_argument("--all", action="store_true", help="send to everyone else")
    send.add_argument("text", help="the message")
    send.set_defaults(run=lambda args: _session(args, _send))

    check = subparsers.add_parser("check", help="fetch, print and delete waiting messages")
    add_connection_options(check)
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(run=lambda args: _session(args, _check))

    watch = subparsers.add_parser("watch", help="stay logged in and print push events")
    add_connection_options(watch)
    watch.add_argument("--json", action="store_true", help="print one JSON object per event")
    watch.set_defaults(run=lambda args: _session(args, _watch))


Action = Callable[[Client, argparse.Namespace], Awaitable[int]]


def _session(args: argparse.Namespace, action: Action) -> int:
    host, port = server_address(args)
    user = username(args)

    async def run() -> int:
        client = await Client.connect(host, port, ssl_context=tls_context(args))
        try:
            secret = password(user) if client.server_info.auth == "password" else None
            await client.login(user, secret, presence=action is _watch)
            return await action(client, args)
        finally:
            await client.close()

    return asyncio.run(run())


async def _users(client: Client, args: argparse.Namespace) -> int:
    users = await client.users()
    if args.json:
        print(json.dumps([{"name": u.name, "online": u.online} for u in users], indent=2))
    else:
        for user in users:
            print(f"{'●' if user.online else '○'} {user.name}{'  (online)' if user.online else ''}")
        print(f"{len(users)} users, {sum(u.online for u in users)} online")
    return 0


async def _send(client: Client, args: argparse.Namespace) -> int:
    result = await client.send(args.text, to=args.to or (), everyone=args.all)
    noun = "recipient" if result.recipients == 1 else "recipients"
    print(f"Sent message {result.id} to {result.recipients} {noun} at {_local(result.at)}.")
    return 0


async def _check(client: Client, args: argparse.Namespace) -> int:
    messages = await client.fetch()
    if args.json:
        print(json.dumps([_as_json(m) for m in messages], indent=2, ensure_ascii=False))
    elif not messages:
        print("No messages.")
    else:
        for message in messages:
            print(f"{_local(message.received_at)}  from {message.sender}")
            for line in message.text.splitlines() or [""]:
                print(f"    {line}")
    sys.stdout.flush()  # printed before acknowledged: a failed print deletes nothing
    await client.ack(m.id for m in messages)
    return 0


async def _watch(client: Client, args: argparse.Namespace) -> int:
    print(f"Watching as {client.user}; press Ctrl+C to stop.", file=sys.stderr)
    while True:
        event = await client.next_event()
        if args.json:
            print(json.dumps(_event_json(event)), flush=True)
        else:
            print(f"{datetime.now().astimezone():%H:%M:%S}  {_describe(event)}", flush=True)
        if isinstance(event, Disconnected):
            return 1


def _as_json(message: Message) -> dict[str, object]:
    return {
        "id": message.id,
        "sender": message.sender,
        "received_at": message.received_at.isoformat(),
        "text": message.text,
    }


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _describe(event: Event) -> str:
    match event:
        case MailWaiting(waiting=count):
            return f"{count} message{'s' if count != 1 else ''} waiting"
        case UserOnline(name=name):
            return f"{name} is online"
        case UserOffline(name=name):
            return f"{name} went offline"
        case UserNew(name=name):
            return f"{name} is new here"
        case Disconnected(reason=reason):
            return f"disconnected: {reason}"
    return str(event)


def _event_json(event: Event) -> dict[str, object]:
    match event:
        case MailWaiting(waiting=count):
            return {"event": "mail", "waiting": count}
        case UserOnline(name=name):
            return {"event": "online", "user": name}
        case UserOffline(name=name):
            return {"event": "offline", "user": name}
        case UserNew(name=name):
            return {"event": "new_user", "user": name}
        case Disconnected(reason=reason):
            return {"event": "disconnected", "reason": reason}
    return {"event": "unknown"}
