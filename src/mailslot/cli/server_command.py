"""`mailslot server`: headless, or with its dashboard on a desktop (B7).

Every setting has a flag, a MAILSLOT_… environment variable and a config-file key,
all made from one table (server/config.py); precedence flag > env > file > default.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from mailslot.cli.common import UsageError, no_desktop
from mailslot.server import MailslotServer, ServerConfig
from mailslot.server.config import (
    CONFIG_ENV,
    ConfigError,
    Resolved,
    Setting,
    all_settings,
    resolve,
    startup_failure,
)
from mailslot.server.logs import setup_logging
from mailslot.server.transport import loop as event_loop

log = logging.getLogger("mailslot.server")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    server = subparsers.add_parser(
        "server",
        help="run the server",
        description=(
            "Run the Mailslot server. Every option can also be set with its MAILSLOT_… "
            "environment variable or in a TOML config file (key: the option's name with "
            "underscores); precedence: option > environment > config file > default."
        ),
    )
    server.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"read settings from this TOML file (env {CONFIG_ENV})",
    )
    server.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings and where each came from, then exit",
    )
    for setting in all_settings():
        default = "unset" if setting.default is None else setting.default
        if setting.is_bool:
            default = "on" if setting.default else "off"
        help_text = f"{setting.help} (env {setting.env}; default: {default})"
        if setting.is_bool:
            # --headless / --no-headless; --no-limits / --limits: a flag beats the env
            negative = setting.name[3:] if setting.name.startswith("no_") else "no_" + setting.name
            for flag, value in ((setting.flag, True), ("--" + negative.replace("_", "-"), False)):
                server.add_argument(
                    flag,
                    dest=setting.name,
                    action="store_const",
                    const=value,
                    default=argparse.SUPPRESS,
                    help=help_text if value else argparse.SUPPRESS,
                )
            continue
        server.add_argument(
            setting.flag,
            dest=setting.name,
            metavar=_metavar(setting),
            default=argparse.SUPPRESS,
            help=help_text.replace("%", "%%"),
        )
    server.set_defaults(run=run_server)


def _metavar(setting: Setting) -> str:
    choices = setting.choices
    if choices:
        return "|".join(choices)
    if setting.name.endswith("host"):
        return "HOST"
    return {int: "N", float: "NUMBER", Path: "PATH"}.get(setting.base, "TEXT")


def settings_from(args: argparse.Namespace, env: dict[str, str] | None = None) -> Resolved:
    flags = {s.name: getattr(args, s.name) for s in all_settings() if hasattr(args, s.name)}
    try:
        return resolve(flags, dict(os.environ) if env is None else env, args.config)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def config_from(args: argparse.Namespace) -> ServerConfig:
    return settings_from(args).config


def run_server(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.print_config:
        print(settings.as_toml(), end="")
        return 0
    config = settings.config
    setup_logging(config.log_level, config.log_format)
    if not settings.options.headless:
        why_not = no_desktop()
        if why_not is None:
            from mailslot.gui.dashboard import run_dashboard

            return run_dashboard(config)
        print(f"No dashboard: {why_not}. Running headless.", file=sys.stderr)
    return event_loop.run(serve_headless(config, args), tls=config.tls_cert is not None)


async def serve_headless(config: ServerConfig, args: argparse.Namespace | None = None) -> int:
    try:
        server = MailslotServer(config)
        await server.start()
    except Exception as error:
        print(f"mailslot: {startup_failure(error, config)}", file=sys.stderr)
        return 1
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(server.stop()))
    if args is not None:
        loop.add_signal_handler(signal.SIGHUP, lambda: reload(server, args))
    print(
        f"Mailslot listening on {server.address} (data in {config.data_dir}); Ctrl+C stops it.",
        file=sys.stderr,
        flush=True,
    )
    await server.serve_forever()
    return 0


def reload(server: MailslotServer, args: argparse.Namespace) -> None:
    """SIGHUP: reread the settings; apply the log level and the TLS certificate.
    Connections stay open; other settings need a restart."""
    from mailslot.server.logs import set_level
    from mailslot.server.operations import reload_tls

    try:
        fresh = settings_from(args).config
    except UsageError as error:
        log.error("reload failed, settings unchanged: %s", error)
        return
    set_level(fresh.log_level)
    log.info("reloaded: log level %s", fresh.log_level)
    reload_tls(server, fresh)
