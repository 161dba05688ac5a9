"""`mailslot server`: headless, or with its dashboard on a desktop (B7)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import replace
from pathlib import Path

from mailslot.cli.common import UsageError, no_desktop
from mailslot.server import DEFAULT_PORT, Limits, MailslotServer, ServerConfig, default_data_dir
from mailslot.server.config import StartupError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    server = subparsers.add_parser("server", help="run the server")
    server.add_argument(
        "--headless", action="store_true", help="no dashboard window, just the server and its log"
    )
    server.add_argument("--host", default="127.0.0.1", help="address to listen on")
    server.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    server.add_argument(
        "--data-dir", type=Path, default=None, help=f"where to keep data ({default_data_dir()})"
    )
    server.add_argument(
        "--auth",
        choices=["password", "none"],
        default="password",
        help="password: names are protected by a password set on first use; none: names only",
    )
    server.add_argument("--tls-cert", type=Path, help="certificate chain (PEM) to serve TLS")
    server.add_argument("--tls-key", type=Path, help="private key (PEM) for --tls-cert")
    defaults = Limits()
    server.add_argument(
        "--max-text", type=int, default=defaults.max_text, help="longest message, in characters"
    )
    server.add_argument(
        "--max-connections",
        type=int,
        default=defaults.max_connections,
        help="most connections at once",
    )
    server.add_argument(
        "--idle-timeout",
        type=float,
        default=defaults.idle_timeout,
        help="seconds of silence before a connection is closed",
    )
    server.add_argument(
        "--no-limits",
        action="store_true",
        help="no per-connection request rate and a high connection limit (benchmarks)",
    )
    server.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING …")
    server.set_defaults(run=run_server)


def config_from(args: argparse.Namespace) -> ServerConfig:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("TLS needs both --tls-cert and --tls-key")
    for path in (args.tls_cert, args.tls_key):
        if path is not None and not path.is_file():
            raise UsageError(f"{path} does not exist")
    limits = Limits.unlimited() if args.no_limits else Limits()
    limits = replace(
        limits,
        max_text=args.max_text,
        max_connections=max(args.max_connections, limits.max_connections),
        idle_timeout=args.idle_timeout,
    )
    return ServerConfig(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir or default_data_dir(),
        auth=args.auth,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        limits=limits,
    )


def run_server(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = config_from(args)
    if not args.headless:
        why_not = no_desktop()
        if why_not is None:
            from mailslot.gui.dashboard import run_dashboard

            return run_dashboard(config)
        print(f"No dashboard: {why_not}. Running headless.", file=sys.stderr)
    return asyncio.run(serve_headless(config))


async def serve_headless(config: ServerConfig) -> int:
    server = MailslotServer(config)
    try:
        await server.start()
    except StartupError as error:
        print(f"mailslot: {error}", file=sys.stderr)
        return 1
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(server.stop()))
    print(
        f"Mailslot listening on {server.address} (data in {config.data_dir}); Ctrl+C stops it.",
        file=sys.stderr,
        flush=True,
    )
    await server.serve_forever()
    return 0
