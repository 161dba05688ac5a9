"""`mailslot admin --data-dir DIR …`: administer a running server through the control
socket in its data dir (whoever can reach the data dir may administer the server)."""

from __future__ import annotations

import argparse
import errno
import getpass
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from mailslot.cli.common import UsageError
from mailslot.server.config import CONFIG_ENV, ConfigError, ServerConfig, resolve

TIMEOUT = 60.0  # seconds; a backup of a large database takes a while


class AdminFailed(Exception):
    """The server could not be reached or refused the request; str() is the sentence."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = subparsers.add_parser(
        "admin",
        help="administer a running server (users, passwords, backups)",
        description=(
            "Administer the server that runs with this data dir, through the admin socket "
            "in it: whoever can reach the data dir may administer the server."
        ),
    )
    _add_location_options(admin, default=None)
    # The same options after the action too (`admin users --data-dir DIR`).
    location = argparse.ArgumentParser(add_help=False)
    _add_location_options(location, default=argparse.SUPPRESS)
    commands = admin.add_subparsers(dest="admin_command", metavar="ACTION")
    admin.set_defaults(run=lambda args: _print_help(admin))

    users = commands.add_parser(
        "users",
        parents=[location],
        help="list users: created, last seen, waiting, password",
        description="List every user with when it was created and last seen (UTC), the "
        "messages waiting for it and whether a password protects it.",
    )
    users.add_argument("--json", action="store_true", help="one JSON array")
    users.set_defaults(run=_users)

    reset = commands.add_parser(
        "reset-password",
        parents=[location],
        help="set a new password for a user",
        description="Set a new password: asked twice on a terminal, else read as one line "
        "from standard input.",
    )
    reset.add_argument("name")
    reset.set_defaults(run=_reset_password)

    delete = commands.add_parser(
        "delete-user",
        parents=[location],
        help="delete a user and its waiting messages; the name becomes free",
        description="Delete a user and the messages waiting for it; the name becomes free "
        "for anyone. A session logged in as it is closed first.",
    )
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(run=_delete_user)

    purge = commands.add_parser(
        "purge",
        parents=[location],
        help="delete the messages waiting for a user",
        description="Delete every message waiting for a user; the user stays.",
    )
    purge.add_argument("name")
    purge.set_defaults(run=_purge)

    stats = commands.add_parser(
        "stats", parents=[location], help="counts: users, online, waiting, database size"
    )
    stats.add_argument("--json", action="store_true", help="one JSON object")
    stats.set_defaults(run=_stats)

    backup = commands.add_parser(
        "backup",
        parents=[location],
        help="a consistent copy of the database, made while the server runs",
        description="Write a consistent copy of the database to a new file, with SQLite's "
        "online backup API, while the server goes on serving. The server process writes "
        "the file, so it must be allowed to write there.",
    )
    backup.add_argument("file", type=Path)
    backup.set_defaults(run=_backup)


def _add_location_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="PATH",
        default=default,
        help="the server's data dir (env MAILSLOT_DATA_DIR, else the config file's, else the "
        "server's default)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        default=default,
        help=f"the server's config file (env {CONFIG_ENV})",
    )


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def data_dir(args: argparse.Namespace) -> Path:
    flags = {} if args.data_dir is None else {"data_dir": str(args.data_dir)}
    try:
        config: ServerConfig = resolve(flags, dict(os.environ), args.config).config
    except ConfigError as error:
        raise UsageError(str(error)) from None
    return config.data_dir


def request(args: argparse.Namespace, operation: str, **fields: Any) -> dict[str, Any]:
    """Send one request to the server's control socket; its reply, or AdminFailed."""
    directory = data_dir(args)
    path = directory / "admin.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(TIMEOUT)
        try:
            connection.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise AdminFailed(
                f"no Mailslot server is running with the data dir {directory}"
            ) from None
        except OSError as error:
            if error.errno in (errno.EACCES, errno.EPERM):
                raise AdminFailed(
                    f"not allowed to use {path}: run this as the user the server runs as"
                ) from None
            raise AdminFailed(f"cannot reach the server through {path}: {error.strerror}") from None
        connection.sendall(json.dumps({"op": operation, **fields}).encode() + b"\n")
        reply_line = connection.makefile("rb").readline()
    if not reply_line:
        raise AdminFailed("the server closed the admin connection without answering")
    reply: dict[str, Any] = json.loads(reply_line)
    if not reply.get("ok"):
        raise AdminFailed(str(reply.get("message", "the server refused the request")))
    return reply


def _users(args: argparse.Namespace) -> int:
    rows = request(args, "users")["users"]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("No users yet.")
        return 0
    header = ("NAME", "CREATED (UTC)", "LAST SEEN (UTC)", "WAITING", "PASSWORD")
    table = [
        (
            row["name"],
            row["created"],
            row["last_seen"] or "not since start",  # kept in memory only
            str(row["waiting"]),
            "yes" if row["protected"] else "no",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *table]) for i in range(len(header))]
    for line in [header, *table]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return 0


def read_new_password(name: str) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(f"New password for {name}: ")
        if not first:
            raise UsageError("the password is empty; nothing changed")
        if getpass.getpass("The same again: ") != first:
            raise UsageError("the two passwords differ; nothing changed")
        return first
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise UsageError("no password on standard input; nothing changed")
    return line


def _reset_password(args: argparse.Namespace) -> int:
    request(args, "users")  # says "no server running" before asking for a password
    password = read_new_password(args.name)
    reply = request(args, "reset_password", name=args.name, password=password)
    print(f"New password set for {reply['name']}.")
    return 0


def _delete_user(args: argparse.Namespace) -> int:
    if not args.yes:
        rows = request(args, "users")["users"]
        waiting = {row["name"]: row["waiting"] for row in rows}
        if not sys.stdin.isatty():
            raise UsageError("delete-user asks for confirmation: run it in a terminal or add --yes")
        count = waiting.get(args.name)
        detail = f" and its {_messages(count)} waiting" if count else ""
        answer = input(f"Delete {args.name}{detail}? The name becomes free. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 1
    reply = request(args, "delete_user", name=args.name)
    closed = " (its session was closed)" if reply["signed_out"] else ""
    print(f"Deleted {reply['name']} and {_messages(reply['deleted_messages'])}{closed}.")
    return 0


def _purge(args: argparse.Namespace) -> int:
    reply = request(args, "purge", name=args.name)
    print(f"Deleted {_messages(reply['deleted_messages'])} waiting for {reply['name']}.")
    return 0


def _stats(args: argparse.Namespace) -> int:
    reply = request(args, "stats")
    del reply["ok"]
    if args.json:
        print(json.dumps(reply, indent=2))
        return 0
    labels = {
        "address": "listening on",
        "started": "started (UTC)",
        "users": "users",
        "online": "online",
        "connections": "connections",
        "waiting": "messages waiting",
        "delivered": "messages delivered",
        "database_bytes": "database size (bytes)",
    }
    for key, label in labels.items():
        print(f"{label + ':':24} {reply[key]}")
    return 0


def _backup(args: argparse.Namespace) -> int:
    target = args.file.expanduser().absolute()
    reply = request(args, "backup", path=str(target))
    print(f"Backup written to {reply['path']} ({reply['bytes']} bytes).")
    return 0


def _messages(count: int) -> str:
    return "1 message" if count == 1 else f"{count} messages"
