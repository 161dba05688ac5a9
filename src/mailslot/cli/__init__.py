"""The `mailslot` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mailslot import __version__
from mailslot.cli import admin, client_commands, migrate, server_command
from mailslot.cli.common import (
    UsageError,
    add_connection_options,
    no_desktop,
    server_addresses,
    tls_context,
)
from mailslot.client import MailslotError
from mailslot.client.address import format_address


def _gui_client(args: argparse.Namespace) -> int:
    why_not = no_desktop()
    if why_not is not None:
        raise UsageError(f"the client needs a desktop, but {why_not}")
    from mailslot.gui.client_app import run_client

    server = None
    if args.server or os.environ.get("MAILSLOT_SERVER"):
        server = ", ".join(format_address(*address) for address in server_addresses(args))
    return run_client(server, args.user, tls_context(args))


def _demo(args: argparse.Namespace) -> int:
    why_not = no_desktop()
    if why_not is not None:
        raise UsageError(f"the demo needs a desktop, but {why_not}")
    from mailslot.gui.demo import run_demo

    return run_demo()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailslot",
        description="Store-and-forward messages for small groups.",
    )
    parser.add_argument("--version", action="version", version=f"mailslot {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    server_command.register(subparsers)
    admin.register(subparsers)
    migrate.register(subparsers)
    client = subparsers.add_parser("client", help="open the desktop client")
    add_connection_options(client)
    client.set_defaults(run=_gui_client)
    client_commands.register(subparsers)
    demo = subparsers.add_parser("demo", help="a server dashboard and three clients, to try it")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `mailslot`: what it can do
        parser.print_help()
        return 0
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `mailslot check | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, MailslotError, admin.AdminFailed) as error:
        print(f"mailslot: {error}", file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1
