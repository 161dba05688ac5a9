"""The scriptable subcommands: users, send, check, watch (B6)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeAlias

from mailslot.cli.common import (
    UsageError,
    add_connection_options,
    ask_password,
    can_prompt,
    choose_password,
    password_from_env,
    server_addresses,
    tls_context,
    username,
)
from mailslot.client import (
    Client,
    Disconnected,
    Event,
    MailWaiting,
    Message,
    PasswordRequired,
    UserNew,
    UserOffline,
    UserOnline,
)
from mailslot.client.address import format_address
from mailslot.gui.archive import Archive, archive_path

Action = Callable[[Client, argparse.Namespace], Awaitable[int]]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _command(
    subparsers: Subparsers, name: str, summary: str, action: Action
) -> argparse.ArgumentParser:
    """A subcommand whose help page starts with ``summary``."""
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
    )
    add_connection_options(parser)
    parser.set_defaults(run=lambda args: _session(args, action))
    return parser


def register(subparsers: Subparsers) -> None:
    users = _command(subparsers, "users", "list every username the server has seen", _users)
    users.add_argument("--json", action="store_true", help="print JSON")

    send = _command(subparsers, "send", "send a message", _send)
    who = send.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--to", action="append", metavar="NAME", help="a recipient (repeat for several)"
    )
    who.add_argument("--all", action="store_true", help="send to everyone else")
    send.add_argument(
        "text",
        nargs="?",
        help="the message; '-' or nothing reads it from standard input when that is not a terminal",
    )
    send.add_argument("--json", action="store_true", help="print the message's id and time as JSON")
    send.set_defaults(run=lambda args: _session(_with_text(args), _send))

    check = _command(subparsers, "check", "fetch, print and delete waiting messages", _check)
    check.add_argument("--json", action="store_true", help="print JSON")

    watch = _command(subparsers, "watch", "stay logged in and print push events", _watch)
    watch.add_argument(
        "--fetch",
        action="store_true",
        help="fetch, print and delete messages as they arrive (printed as `check` prints them)",
    )
    watch.add_argument("--json", action="store_true", help="print one JSON object per line")

    _command(
        subparsers,
        "passwd",
        "change your password (the new one is asked twice, or read as one line from stdin)",
        _passwd,
    )


def _session(args: argparse.Namespace, action: Action) -> int:
    servers = server_addresses(args)
    user = username(args)
    args.address = format_address(*servers[0])  # names the archive, whichever node answers

    async def run() -> int:
        client = await Client.connect_first(servers, ssl_context=tls_context(args))
        try:
            args.password = await _log_in(client, user, presence=action is _watch)
            return await action(client, args)
        finally:
            await client.close()

    return asyncio.run(run())


async def _log_in(client: Client, user: str, *, presence: bool) -> str | None:
    """Log in, with MAILSLOT_PASSWORD or a password asked on a terminal; returns it.

    Without MAILSLOT_PASSWORD the first attempt goes without a password, so the server
    can say whether the name is new, and a new name's password is asked for twice.
    """
    secret = password_from_env() if client.server_info.auth == "password" else None
    if secret is None:
        try:
            await client.login(user, None, presence=presence)
            return None
        except PasswordRequired as refusal:
            secret = password_from_env()
            if secret is None:
                if not can_prompt():
                    raise UsageError(
                        "this server needs a password: set MAILSLOT_PASSWORD or run in a terminal"
                    ) from None
                secret = ask_password(user, new=bool(refusal.extra.get("new")))
    await client.login(user, secret, presence=presence)
    return secret


async def _passwd(client: Client, args: argparse.Namespace) -> int:
    old = args.password or ""  # "" for a name without a password yet (open mode)
    await client.change_password(old, choose_password(f"New password for {client.user}"))
    print(f"The password of {client.user} is changed.")
    return 0


def _with_text(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with the text to send: the argument, or standard input for '-' or none."""
    if args.text is not None and args.text != "-":
        return args
    if sys.stdin.isatty():
        raise UsageError("no message: give the text as an argument, or pipe it in with '-'")
    return argparse.Namespace(**{**vars(args), "text": sys.stdin.read().removesuffix("\n")})


async def _users(client: Client, args: argparse.Namespace) -> int:
    users = await client.users()
    if args.json:
        print(json.dumps([{"name": u.name, "online": u.online} for u in users], indent=2))
    else:
        for user in users:
            print(f"{'●' if user.online else '○'} {user.name}{'  (online)' if user.online else ''}")
        print(f"{_count(len(users), 'user')}, {sum(u.online for u in users)} online")
    return 0


async def _send(client: Client, args: argparse.Namespace) -> int:
    result = await client.send(args.text, to=args.to or (), everyone=args.all)
    if args.json:
        at = result.at.isoformat()
        print(json.dumps({"id": result.id, "at": at, "recipients": result.recipients}))
    else:
        recipients = _count(result.recipients, "recipient")
        print(f"Sent message {result.id} to {recipients} at {_local(result.at)}.")
    return 0


async def _check(client: Client, args: argparse.Namespace) -> int:
    messages = await client.fetch()
    if args.json:
        print(json.dumps([_as_json(m) for m in messages], indent=2, ensure_ascii=False))
    elif not messages:
        print("No messages.")
    else:
        _print_messages(messages)
    sys.stdout.flush()  # printed before acknowledged: a failed print deletes nothing
    _keep_locally(args.address, client, messages)
    await client.ack(m.id for m in messages)
    return 0


async def _watch(client: Client, args: argparse.Namespace) -> int:
    print(f"Watching as {client.user}; press Ctrl+C to stop.", file=sys.stderr)
    if args.fetch:
        await _fetch_and_print(client, args)
    while True:
        event = await client.next_event()
        if args.fetch and isinstance(event, MailWaiting):
            if event.waiting:
                await _fetch_and_print(client, args)
            continue
        if args.json:
            print(json.dumps(_event_json(event)), flush=True)
        else:
            print(f"{datetime.now().astimezone():%H:%M:%S}  {_describe(event)}", flush=True)
        if isinstance(event, Disconnected):
            return 1


async def _fetch_and_print(client: Client, args: argparse.Namespace) -> None:
    """Print what waits (one JSON object a line with ``--json``), then acknowledge it."""
    messages = await client.fetch()
    if args.json:
        for message in messages:
            print(json.dumps(_as_json(message), ensure_ascii=False))
    else:
        _print_messages(messages)
    sys.stdout.flush()
    _keep_locally(args.address, client, messages)
    await client.ack(m.id for m in messages)


def _keep_locally(address: str, client: Client, messages: Sequence[Message]) -> None:
    """Keep fetched messages in the desktop client's archive too, so that its history has
    everything this user picked up on this computer, whichever way (B5)."""
    if not messages or client.user is None:
        return
    try:
        archive = Archive(archive_path(address, client.user))
        try:
            archive.add(messages)
        finally:
            archive.close()
    except (OSError, sqlite3.Error) as error:
        print(f"mailslot: warning: not kept on this computer ({error})", file=sys.stderr)


def _print_messages(messages: Sequence[Message]) -> None:
    for message in messages:
        print(f"{_local(message.received_at)}  from {message.sender}")
        for line in message.text.splitlines() or [""]:
            print(f"    {line}")


def _as_json(message: Message) -> dict[str, object]:
    """A message for scripts: ``sender`` and ``received_at`` are the wire's ``from`` and ``at``."""
    return {
        "id": message.id,
        "sender": message.sender,
        "received_at": message.received_at.isoformat(),
        "text": message.text,
    }


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _describe(event: Event) -> str:
    match event:
        case MailWaiting(waiting=count):
            return f"{_count(count, 'message')} waiting"
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
