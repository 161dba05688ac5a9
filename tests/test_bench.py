"""The benchmark suite must not rot: its quick mode (W1–W7, WEB) against Mailslot alone, tiny.

No timing is asserted; only that every phase ran and nothing was lost,
duplicated, misrouted or left over.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(240)
def test_bench_quick_mailslot_tiny(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--systems",
        "mailslot",
        "--users",
        "20",
        "--messages",
        "200",
        "--bc-users",
        "50",
        "--bc-messages",
        "3",
        "--conns",
        "50",
        "--rate",
        "200",
        "--lat-seconds",
        "0.5",
        "--procs",
        "2",
        "--senders",
        "2",
        "--lat-senders",
        "2",
        "--w6-users",
        "40",
        "--w6-conns",
        "8",
        "--w6-messages",
        "100",
        "--w6p-messages",
        "256",
        "--timeout",
        "60",
        "--json",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=220)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    [ms] = res["systems"]
    assert ms["system"] == "mailslot"
    assert not ms["errors"], ms["errors"]
    phases = ms["phases"]
    for phase in ("setup", "W1", "W2", "W1+W2", "W3-setup", "W3-send", "W3-drain", "W4", "W5"):
        assert phase in phases, phase
    for phase in ("W6-setup", "W6", "W6p", "W7"):
        assert phase in phases, phase
    for name, v in ms["verify"].items():
        assert v["lost"] == v["duplicated"] == v["misrouted"] == v["leftover"] == 0, (name, v)
        assert v["foreign"] == 0 and v["send_errors"] == 0, (name, v)
        assert v["delivered"] == v["expected"] > 0, (name, v)
    assert ms["verify"]["W1W2"]["delivered"] == 200
    # W7 drains and verifies what W6 (1 in flight) and W6p (16 in flight) stored
    assert phases["W6"]["messages"] == 100 and phases["W6p"]["messages"] == 256
    assert phases["W6"]["inflight"] == 1 and phases["W6p"]["inflight"] == 16
    assert phases["W6"]["send_errors"] == phases["W6p"]["send_errors"] == 0
    assert ms["verify"]["W6W7"]["delivered"] == 356
    assert phases["W7"]["users"] == 40 and phases["W7"]["delivered"] == 356
    assert phases["W6"]["ack_ms_p50"] > 0 and phases["W7"]["login_ms_p99"] > 0
    assert ms["phases"]["W4"]["connections"] == 50
    # WEB: browsers over WebSocket beside TCP clients on one server
    web = res["web"]
    assert web["idle_connections"] == 200
    assert set(web["idle_kib_per_connection"]) == {"tcp", "websocket"}
    for transport in ("tcp", "websocket"):
        assert all(run["messages"] > 0 for run in web[f"{transport}_send_ack"])
    assert ms["phases"]["W5"]["messages"] == ms["phases"]["W5"]["sent"] > 0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| mailslot |" in proc.stdout
    assert "W6p server CPU-s /1k" in proc.stdout


@pytest.mark.timeout(120)
def test_bench_w5_alone_sends_to_users_that_exist(tmp_path: Path) -> None:
    """W5 without W1 first sets up W1's users, whom it sends to; every send is acknowledged."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "bench", "--quick", "--systems", "mailslot", "--phases", "W5"]
    cmd += ["--users", "20", "--rate", "200", "--lat-seconds", "0.5", "--lat-senders", "2"]
    cmd += ["--procs", "2", "--timeout", "60", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=100)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    [ms] = json.loads(out.read_text())["systems"]
    assert not ms["errors"], ms["errors"]
    assert ms["phases"]["W5"]["messages"] == ms["phases"]["W5"]["sent"] == 100
    assert proc.returncode == 0
