"""What the client subcommands share: where the server is, who the user is, TLS."""

from __future__ import annotations

import argparse
import getpass
import os
import ssl
import sys

from mailslot.client.address import parse_addresses
from mailslot.protocol import DEFAULT_PORT

DEFAULT_SERVER = f"127.0.0.1:{DEFAULT_PORT}"


class UsageError(Exception):
    """A mistake in how the command was called; the message is the sentence to print."""


def add_connection_options(parser: argparse.ArgumentParser, *, needs_user: bool = True) -> None:
    parser.add_argument(
        "--server",
        metavar="HOST:PORT",
        help="server address, or several separated by commas, tried in order"
        f" (env MAILSLOT_SERVER; default {DEFAULT_SERVER})",
    )
    if needs_user:
        parser.add_argument(
            "--user", metavar="NAME", help="username (env MAILSLOT_USER; asked for on a terminal)"
        )
    parser.add_argument(
        "--tls", action="store_true", help="use TLS, verifying the server with the system CAs"
    )
    parser.add_argument(
        "--ca-file",
        metavar="FILE",
        help="use TLS, trusting this CA certificate (env MAILSLOT_CA_FILE)",
    )


def server_addresses(args: argparse.Namespace) -> list[tuple[str, int]]:
    """The servers to try, in order: `--server` or MAILSLOT_SERVER may list several,
    separated by commas."""
    try:
        return parse_addresses(args.server or os.environ.get("MAILSLOT_SERVER") or DEFAULT_SERVER)
    except ValueError as error:
        raise UsageError(str(error).rstrip(".")) from None


def username(args: argparse.Namespace) -> str:
    name = args.user or os.environ.get("MAILSLOT_USER")
    if name:
        return str(name)
    if sys.stdin.isatty():
        return input("Username: ")
    raise UsageError("no username: pass --user NAME or set MAILSLOT_USER")


def password_from_env() -> str | None:
    return os.environ.get("MAILSLOT_PASSWORD")


def can_prompt() -> bool:
    return sys.stdin.isatty()


def ask_password(user: str, *, new: bool) -> str:
    """Ask on the terminal; a new name's password is asked for twice, as it is being set."""
    if not new:
        return getpass.getpass(f"Password for {user}: ")
    print(f"{user} is a new name: choose its password.", file=sys.stderr)
    return choose_password("New password")


def choose_password(prompt: str) -> str:
    """A password typed twice on a terminal, or one line of standard input when it is not one."""
    if not can_prompt():
        line = sys.stdin.readline().removesuffix("\n")
        if not line:
            raise UsageError("no new password: give it as one line on standard input")
        return line
    for _ in range(3):
        first = getpass.getpass(f"{prompt}: ")
        if not first:
            print("The password cannot be empty.", file=sys.stderr)
        elif getpass.getpass(f"{prompt} again: ") == first:
            return first
        else:
            print("The two passwords differ; please type them again.", file=sys.stderr)
    raise UsageError("no password set: the passwords typed did not match")


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    ca_file = getattr(args, "ca_file", None) or os.environ.get("MAILSLOT_CA_FILE")
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    if getattr(args, "tls", False):
        return ssl.create_default_context()
    return None


def no_desktop() -> str | None:
    """Why no window can open here, as a clause to put in a sentence; None if one can."""
    from mailslot import gui

    why_not = gui.available()
    if why_not is None:
        return None
    return why_not[:1].lower() + why_not[1:].rstrip(".")
