"""Running Mailslot as a service: the systemd unit, the example config, SIGHUP."""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from mailslot.client import Client, ConnectError
from mailslot.server.config import resolve
from tests.conftest import ServerProcess, run

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "contrib" / "systemd" / "mailslot.service"


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have systemd-analyze (.ci/run installs systemd)")
        pytest.skip("systemd-analyze is not installed here")
    text = UNIT.read_text()
    for sandboxing in (
        "DynamicUser=yes",
        "StateDirectory=mailslot",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert sandboxing in text.splitlines()
    # verify checks that ExecStart's program exists: point it at this checkout's.
    mailslot = shutil.which("mailslot", path=str(Path(sys.executable).parent))
    assert mailslot is not None
    unit = tmp_path / "mailslot.service"
    unit.write_text(text.replace("/usr/local/bin/mailslot", mailslot))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_the_example_config_is_valid() -> None:
    config = resolve({}, {}, ROOT / "contrib" / "mailslot.toml").config
    assert config.http_port == 9777
    assert config.host == "0.0.0.0"


def _issue(authority: trustme.CA, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    certificate = authority.issue_cert("127.0.0.1")
    certificate.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    certificate.private_key_pem.write_to_path(str(key_file))
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return context


def _wait_for(process: ServerProcess, pattern: str) -> None:
    deadline = time.monotonic() + 20  # a bound against hangs, not a timing requirement
    while not re.search(pattern, process.log_path.read_text()):
        assert time.monotonic() < deadline, process.log_path.read_text()
        assert process.process.poll() is None, process.log_path.read_text()
        time.sleep(0.05)


def test_sighup_reloads_certificate_and_log_level_without_dropping_connections(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    old_authority, new_authority = trustme.CA(), trustme.CA()
    old_trust = _issue(old_authority, cert_file, key_file)
    config_file = tmp_path / "mailslot.toml"
    config_file.write_text('log_level = "warning"\nauth = "none"\n')
    server = server_process(
        "--config", str(config_file), "--tls-cert", str(cert_file), "--tls-key", str(key_file)
    )

    async def scenario() -> None:
        alice = await Client.connect("127.0.0.1", server.port, ssl_context=old_trust)
        await alice.login("alice")
        assert "login 'alice'" not in server.log_path.read_text()  # warning level

        new_trust = _issue(new_authority, cert_file, key_file)
        config_file.write_text('log_level = "info"\nauth = "none"\n')
        server.process.send_signal(signal.SIGHUP)
        _wait_for(server, "TLS certificate reloaded")

        await alice.ping()  # the connection made before the reload goes on
        await alice.send("still here", to=["alice"])
        bob = await Client.connect("127.0.0.1", server.port, ssl_context=new_trust)
        await bob.login("bob")
        with pytest.raises(ConnectError, match="TLS"):
            await Client.connect("127.0.0.1", server.port, ssl_context=old_trust)
        _wait_for(server, "login 'bob'")  # info level now
        await bob.close()
        await alice.close()

    run(scenario())
    log = server.stop()
    assert "reloaded: log level info" in log
    assert "login 'alice'" not in log


def test_a_bad_certificate_on_sighup_keeps_the_old_one(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    trust = _issue(trustme.CA(), cert_file, key_file)
    server = server_process(
        "--auth", "none", "--tls-cert", str(cert_file), "--tls-key", str(key_file)
    )
    cert_file.write_text("not a certificate\n")
    server.process.send_signal(signal.SIGHUP)
    _wait_for(server, "TLS certificate not reloaded, the old one stays")

    async def scenario() -> None:
        client = await Client.connect("127.0.0.1", server.port, ssl_context=trust)
        await client.login("alice")
        await client.close()

    run(scenario())


def test_scripts_serve_takes_paths_relative_to_where_it_runs(tmp_path: Path) -> None:
    if not (ROOT / ".venv" / "bin" / "mailslot").exists():
        pytest.skip("scripts/serve would install first; ./scripts/test makes .venv")
    (tmp_path / "here.toml").write_text("port = 7123\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSLOT_")}
    done = subprocess.run(
        [ROOT / "scripts" / "serve", "--config", "here.toml", "--print-config"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "port = 7123  # file here.toml" in done.stdout
