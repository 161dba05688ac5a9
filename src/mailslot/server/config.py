"""Server settings: where to listen, where to keep data, the limits (B8), and how
they are read.

Every field of :class:`ServerConfig`, :class:`Limits` and :class:`RunOptions` is a
setting: a flag (``--max-text``), an environment variable (``MAILSLOT_MAX_TEXT``)
and a key of the TOML config file (``max_text``), all three derived from the field
itself, so a field added later gets them too. Precedence: flag > environment >
config file > default.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import ssl
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mailslot.protocol import DEFAULT_MAX_FRAME, DEFAULT_PORT

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]
ENV_PREFIX = "MAILSLOT_"
CONFIG_ENV = "MAILSLOT_CONFIG"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "mailslot" / "server"


@dataclass(frozen=True)
class Limits:
    max_frame: int = DEFAULT_MAX_FRAME
    max_text: int = 1000
    max_recipients: int = 100
    max_batch: int = 200
    rate_per_second: float = 50.0  # requests per connection; 0 disables
    rate_burst: int = 200
    max_connections: int = 10_000
    idle_timeout: float = 600.0  # seconds without a whole frame from the client
    login_timeout: float = 10.0  # seconds from connect to a successful login
    max_anonymous_per_source: int = 32  # connections not logged in, per source address; 0: any
    max_output_buffer: int = 1024 * 1024  # bytes queued for one client
    write_timeout: float = 60.0  # seconds a client may leave replies unread before it is dropped
    login_failures: int = 5  # wrong passwords per name and source address per minute
    login_failures_per_source: int = 30  # wrong passwords per source address per minute; 0: any
    new_users_per_source: int = 60  # new names per source address per hour; 0: any
    fanout_per_second: int = 10_000  # queue rows one user's sends may add per second; 0: any
    fanout_burst: int = 50_000  # queue rows one user may add at once before that rate applies

    @classmethod
    def unlimited(cls) -> Limits:
        """For benchmarks: no request rate, many connections from one address."""
        return cls(
            rate_per_second=0,
            max_connections=100_000,
            max_output_buffer=16 * 1024 * 1024,
            login_timeout=120.0,
            max_anonymous_per_source=0,
            login_failures_per_source=0,
            new_users_per_source=0,
            fanout_per_second=0,
        )


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = field(default_factory=default_data_dir)
    database: str | None = None  # postgresql://… instead of the SQLite file in data_dir
    node_name: str | None = None  # this server's name in logs and the dashboard
    auth: Literal["password", "none"] = "password"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    limits: Limits = field(default_factory=Limits)
    http_port: int | None = None
    http_host: str | None = None  # None: the same as host
    allowed_origins: str = ""  # comma-separated, besides the server's own
    log_level: LogLevel = "info"
    log_format: LogFormat = "text"

    @property
    def database_file(self) -> Path:
        """The embedded database, used when no `database` URL is set."""
        return self.data_dir / "mailslot.sqlite3"

    @property
    def control_socket(self) -> Path:
        return self.data_dir / "admin.sock"


@dataclass(frozen=True)
class RunOptions:
    """Settings of `mailslot server` itself rather than of the server it runs."""

    headless: bool = False
    no_limits: bool = False


class StartupError(Exception):
    """The server cannot start; str() is one sentence saying why, for the operator."""


class ConfigError(ValueError):
    """A setting that cannot be used; str() is one sentence naming where it came from."""


# One line per setting; a test checks that every field has one.
HELP = {
    "host": "address to listen on",
    "port": "port to listen on (0: any free port)",
    "data_dir": "where to keep the database and the admin socket",
    "database": "a PostgreSQL URL (postgresql://USER@HOST/DB) to keep users and queues in,"
    " instead of the SQLite file in the data dir; one server per database",
    "node_name": "this server's name in its logs (unset: the host name)",
    "auth": "password: a name is protected by the password set on first use; none: names only",
    "tls_cert": "certificate chain (PEM) to serve TLS; SIGHUP reloads it",
    "tls_key": "private key (PEM) for --tls-cert",
    "http_port": "serve /healthz, /readyz and /metrics over HTTP on this port (off when unset)",
    "http_host": "address for --http-port (unset: the same as --host)",
    "allowed_origins": "web origins besides the server's own whose pages may use /ws"
    " (comma-separated, e.g. https://mail.example.org)",
    "log_level": "least severe log messages to write; SIGHUP rereads it from the config file",
    "log_format": "text: one line per event; json: one JSON object per line",
    "headless": "no dashboard window, just the server and its log",
    "no_limits": "defaults for benchmarks: no request rate, many connections (explicit limits win)",
    "max_frame": "longest request line, in bytes",
    "max_text": "longest message, in characters",
    "max_recipients": "most recipients of one message",
    "max_batch": "most messages in one check reply",
    "rate_per_second": "requests per second per connection (0: no limit)",
    "rate_burst": "requests a connection may send at once before the rate applies",
    "max_connections": "most connections at once",
    "idle_timeout": "seconds without a whole request before a connection is closed",
    "login_timeout": "seconds from connecting (and the TLS handshake) to a successful login",
    "max_anonymous_per_source": "connections not logged in yet, per source address (0: any)",
    "max_output_buffer": "bytes waiting for one slow client before it is dropped",
    "write_timeout": "seconds a client may leave replies unread before it is dropped",
    "login_failures": "wrong passwords per name and source address per minute before throttling",
    "login_failures_per_source": "wrong passwords per source address per minute (0: any)",
    "new_users_per_source": "new names per source address per hour (0: any)",
    "fanout_per_second": "queue places (recipients) one user's messages may fill per second"
    " (0: any)",
    "fanout_burst": "queue places one user may fill at once before --fanout-per-second applies",
}


@dataclass(frozen=True)
class Setting:
    name: str
    owner: type  # ServerConfig, Limits or RunOptions
    kind: Any  # the field's annotation
    default: Any

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def help(self) -> str:
        return HELP.get(self.name, "")

    @property
    def base(self) -> Any:
        """The type without None: Path for `Path | None`."""
        return _without_none(self.kind)

    @property
    def is_bool(self) -> bool:
        return self.kind is bool

    @property
    def choices(self) -> tuple[str, ...] | None:
        base = _without_none(self.kind)
        if typing.get_origin(base) is Literal:
            return tuple(typing.get_args(base))
        return None

    def from_text(self, text: str, origin: str) -> Any:
        """A value from a flag or an environment variable."""
        base = _without_none(self.kind)
        if base is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{origin}: {text!r} is not true or false")
        if base is int or base is float:
            try:
                number: int | float = base(text)
            except ValueError:
                noun = "a whole number" if base is int else "a number"
                raise ConfigError(f"{origin}: {text!r} is not {noun}") from None
            return self._checked(number, origin)
        if base is Path:
            return Path(text).expanduser()
        return self._checked(text.lower() if self.choices else text, origin)

    def from_file(self, value: object, origin: str, base_dir: Path) -> Any:
        """A value from the TOML file, where it already has a type."""
        base = _without_none(self.kind)
        expected: dict[Any, type | tuple[type, ...]] = {float: (int, float), Path: str}
        wanted = expected.get(base, base if base in (bool, int, str) else str)
        if isinstance(value, bool) != (base is bool) or not isinstance(value, wanted):
            raise ConfigError(f"{origin}: {value!r} is not {_describe(base)}")
        if isinstance(value, str) and base is Path:
            return base_dir / Path(value).expanduser()
        if isinstance(value, int) and base is float:
            value = float(value)
        if isinstance(value, str) and self.choices:
            value = value.lower()
        return self._checked(value, origin)

    def _checked(self, value: Any, origin: str) -> Any:
        choices = self.choices
        if choices is not None and value not in choices:
            raise ConfigError(f"{origin}: {value!r} is not one of {', '.join(choices)}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value < 0:
                raise ConfigError(f"{origin}: {value} is negative")
            if self.name.endswith("port") and value > 65535:
                raise ConfigError(f"{origin}: {value} is not a port number")
        return value


def _without_none(kind: Any) -> Any:
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        rest = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return kind


def _describe(base: Any) -> str:
    if base is bool:
        return "true or false"
    if base is int:
        return "a whole number"
    if base is float:
        return "a number"
    return "a string"


def _settings_of(owner: type) -> list[Setting]:
    hints = typing.get_type_hints(owner)
    settings = []
    for spec in dataclasses.fields(owner):
        if dataclasses.is_dataclass(hints[spec.name]):
            continue  # ServerConfig.limits: its fields are settings of their own
        if spec.default is not dataclasses.MISSING:
            default = spec.default
        else:
            assert spec.default_factory is not dataclasses.MISSING
            default = spec.default_factory()
        settings.append(Setting(spec.name, owner, hints[spec.name], default))
    return settings


def all_settings() -> list[Setting]:
    return [*_settings_of(RunOptions), *_settings_of(ServerConfig), *_settings_of(Limits)]


@dataclass(frozen=True)
class Resolved:
    """The effective settings and, per setting name, where its value came from."""

    config: ServerConfig
    options: RunOptions
    sources: dict[str, str]
    config_file: Path | None

    def value(self, name: str) -> Any:
        for holder in (self.options, self.config, self.config.limits):
            if hasattr(holder, name):
                return getattr(holder, name)
        raise KeyError(name)

    def as_toml(self) -> str:
        """The effective settings as a config file, each with its source as a comment."""
        lines = ["# Effective settings; precedence: flag > environment > config file > default."]
        for setting in all_settings():
            value = self.value(setting.name)
            source = self.sources[setting.name]
            if value is None:
                lines.append(f"# {setting.name} is not set  # {source}")
            else:
                lines.append(f"{setting.name} = {_toml_value(value)}  # {source}")
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"the config file {path} does not exist") from None
    except OSError as error:
        raise ConfigError(f"cannot read the config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"the config file {path} is not valid TOML: {error}") from None


def resolve(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    config_file: Path | None = None,
) -> Resolved:
    """The effective settings from flags given (name → text, or bool for switches),
    the environment and the config file (the flag, else MAILSLOT_CONFIG)."""
    if config_file is None and env.get(CONFIG_ENV):
        config_file = Path(env[CONFIG_ENV]).expanduser()
    settings = all_settings()
    by_name = {setting.name: setting for setting in settings}
    from_file: dict[str, Any] = {}
    if config_file is not None:
        table = read_config_file(config_file)
        for key, raw in table.items():
            setting = by_name.get(key)
            if setting is None:
                raise ConfigError(f"{config_file}: unknown key {key!r}")
            origin = f"{config_file}: {key}"
            from_file[key] = setting.from_file(raw, origin, config_file.parent)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in settings:
        name = setting.name
        if name in flags:
            given = flags[name]
            values[name] = (
                given if isinstance(given, bool) else setting.from_text(given, setting.flag)
            )
            sources[name] = f"flag {setting.flag}"
        elif env.get(setting.env):
            values[name] = setting.from_text(env[setting.env], setting.env)
            sources[name] = f"env {setting.env}"
        elif name in from_file:
            values[name] = from_file[name]
            sources[name] = f"file {config_file}"
        else:
            values[name] = setting.default
            sources[name] = "default"
    if values["no_limits"]:
        for name, value in dataclasses.asdict(Limits.unlimited()).items():
            if sources[name] == "default" and values[name] != value:
                values[name] = value
                sources[name] = "default of --no-limits"
    return _build(values, sources, config_file)


def _build(values: dict[str, Any], sources: dict[str, str], config_file: Path | None) -> Resolved:
    def pick(owner: type) -> dict[str, Any]:
        return {setting.name: values[setting.name] for setting in _settings_of(owner)}

    config = ServerConfig(**pick(ServerConfig), limits=Limits(**pick(Limits)))
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("TLS needs both tls_cert and tls_key (--tls-cert and --tls-key)")
    for name in ("tls_cert", "tls_key"):
        path = getattr(config, name)
        if path is not None and not path.is_file():
            raise ConfigError(f"{name} ({sources[name]}): {path} does not exist")
    return Resolved(config, RunOptions(**pick(RunOptions)), sources, config_file)


def startup_failure(error: BaseException, config: ServerConfig) -> str:
    """One sentence for the operator on why the server did not start, the same for
    the headless server and the dashboard."""
    if isinstance(error, StartupError | ConfigError):
        return str(error)
    if isinstance(error, ssl.SSLError):
        return f"cannot use the TLS certificate {config.tls_cert}: {error.reason or error}"
    if isinstance(error, OSError):
        why = error.strerror or str(error)
        why = why[:1].lower() + why[1:]
        if error.filename is not None:  # a file or directory, not the listening socket
            path = Path(error.filename)
            if path == config.data_dir or config.data_dir in path.parents:
                return f"cannot use the data directory {config.data_dir}: {why}"
            return f"cannot use {path}: {why}"
        return f"cannot listen on {config.host}:{config.port}: {listen_failure(error)}"
    return f"the server could not start: {error}"


def listen_failure(error: OSError) -> str:
    """Why a port could not be opened, as a clause."""
    if error.errno == errno.EADDRINUSE:
        return "another program already uses that port"
    why = error.strerror or str(error)
    return why[:1].lower() + why[1:]
