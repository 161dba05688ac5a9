"""Server settings: flags, MAILSLOT_* variables and the TOML file, from one table."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mailslot.cli import build_parser, main
from mailslot.cli.server_command import settings_from
from mailslot.server.config import HELP, ConfigError, Limits, all_settings, resolve


def settings(*argv: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    args = build_parser().parse_args(["server", *argv])
    return settings_from(args, env or {})


def test_max_connections_below_the_default_is_honoured() -> None:
    assert settings("--max-connections", "5").config.limits.max_connections == 5
    assert settings("--no-limits", "--max-connections", "5").config.limits.max_connections == 5


def test_no_limits_changes_only_the_limits_not_given() -> None:
    resolved = settings("--no-limits", "--max-text", "50")
    limits = resolved.config.limits
    assert limits.rate_per_second == Limits.unlimited().rate_per_second == 0
    assert limits.max_connections == Limits.unlimited().max_connections
    assert limits.max_text == 50
    assert resolved.sources["rate_per_second"] == "default of --no-limits"
    assert resolved.sources["max_text"] == "flag --max-text"


def test_precedence_is_flag_then_env_then_file_then_default(tmp_path: Path) -> None:
    config_file = tmp_path / "mailslot.toml"
    config_file.write_text('port = 7001\nmax_text = 300\nauth = "none"\nidle_timeout = 30\n')
    env = {"MAILSLOT_PORT": "7002", "MAILSLOT_MAX_TEXT": "400"}
    resolved = settings("--config", str(config_file), "--port", "7003", env=env)
    config = resolved.config
    assert (config.port, config.limits.max_text, config.auth) == (7003, 400, "none")
    assert config.limits.idle_timeout == 30.0
    assert config.limits.max_batch == Limits().max_batch
    assert resolved.sources["port"] == "flag --port"
    assert resolved.sources["max_text"] == "env MAILSLOT_MAX_TEXT"
    assert resolved.sources["auth"] == f"file {config_file}"
    assert resolved.sources["max_batch"] == "default"


def test_the_config_file_may_come_from_the_environment(tmp_path: Path) -> None:
    config_file = tmp_path / "mailslot.toml"
    config_file.write_text('data_dir = "state"\nheadless = true\n')
    resolved = settings(env={"MAILSLOT_CONFIG": str(config_file)})
    assert resolved.config.data_dir == tmp_path / "state"  # relative to the file
    assert resolved.options.headless is True
    flag_wins = settings("--no-headless", env={"MAILSLOT_CONFIG": str(config_file)})
    assert flag_wins.options.headless is False


def test_every_setting_has_a_flag_an_env_variable_and_a_help_line() -> None:
    help_text = build_parser()._subparsers._group_actions[0].choices["server"].format_help()  # type: ignore[union-attr]
    for setting in all_settings():
        assert HELP.get(setting.name), f"no help line for {setting.name}"
        assert setting.flag in help_text
        assert setting.env in help_text
    assert "default: 7777" in help_text
    assert "default: 1000" in help_text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("prot = 7777\n", "unknown key 'prot'"),
        ('port = "many"\n', "'many' is not a whole number"),
        ("max_text = -1\n", "-1 is negative"),
        ('auth = "maybe"\n', "'maybe' is not one of password, none"),
        ("port = \n", "is not valid TOML"),
    ],
)
def test_bad_config_files_are_errors_naming_the_key(
    tmp_path: Path, content: str, message: str
) -> None:
    config_file = tmp_path / "bad.toml"
    config_file.write_text(content)
    with pytest.raises(ConfigError, match=message):
        resolve({}, {}, config_file)


def test_bad_values_name_their_flag_or_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "--log-level", "bogus"]) == 2
    err = capsys.readouterr().err
    assert err == "mailslot: --log-level: 'bogus' is not one of debug, info, warning, error\n"
    with pytest.raises(ConfigError, match="MAILSLOT_IDLE_TIMEOUT: 'soon' is not a number"):
        resolve({}, {"MAILSLOT_IDLE_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match="MAILSLOT_HEADLESS: 'perhaps' is not true or false"):
        resolve({}, {"MAILSLOT_HEADLESS": "perhaps"})
    with pytest.raises(ConfigError, match="tls_cert and tls_key"):
        resolve({"tls_cert": "/etc/hostname"}, {})


def test_print_config_is_a_config_file_with_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSLOT_RATE_BURST", "20")
    config_file = tmp_path / "mailslot.toml"
    config_file.write_text('host = "0.0.0.0"\n')
    argv = ["server", "--config", str(config_file), "--port", "0", "--print-config"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "rate_burst = 20  # env MAILSLOT_RATE_BURST" in printed
    assert f'host = "0.0.0.0"  # file {config_file}' in printed
    assert "port = 0  # flag --port" in printed
    assert "# http_port is not set  # default" in printed
    again = tmp_path / "printed.toml"
    again.write_text(printed)
    reread = resolve({}, {}, again)
    assert reread.config.limits.rate_burst == 20
    assert reread.config.host == "0.0.0.0"
    assert set(tomllib.loads(printed)) <= {s.name for s in all_settings()}


def test_bare_mailslot_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mailslot")
    assert "admin" in out and "server" in out


def test_the_operations_guide_lists_every_setting() -> None:
    guide = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    for setting in all_settings():
        assert f"| `{setting.name}` | `{setting.flag}` | `{setting.env}` |" in guide
