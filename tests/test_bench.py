"""The benchmark suite must not rot: its quick mode (W1–W7, WEB) against Mailslot alone, and
its PostgreSQL systems (one node, three nodes), tiny.

No timing is asserted; only that every phase ran and nothing was lost,
duplicated, misrouted or left over.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres import SERVER_URL, require_postgres

ROOT = Path(__file__).resolve().parents[1]


def bench_schemas() -> set[str]:
    async def fetch() -> set[str]:
        import asyncpg

        connection = await asyncpg.connect(SERVER_URL, timeout=5)
        try:
            rows = await connection.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'mailslot_bench_%'"
            )
            return {row[0] for row in rows}
        finally:
            await connection.close()

    return asyncio.run(fetch())


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


@pytest.mark.timeout(180)
def test_bench_python_floors_serve_the_user_like_workloads(tmp_path: Path) -> None:
    """The yardsticks of docs/benchmarks.md (bench/floor_server.py, in memory and with its
    fdatasync'd log) pass the same verification as Mailslot; W3 (broadcasts) is left out."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "bench", "--quick", "--systems", "python-floor,python-floor-log"]
    cmd += ["--phases", "W1,W2,W3,W5,W6,W6p,W7", "--users", "20", "--messages", "200"]
    cmd += ["--rate", "200", "--lat-seconds", "0.5", "--lat-senders", "2", "--procs", "2"]
    cmd += ["--senders", "2", "--w6-users", "40", "--w6-conns", "8", "--w6-messages", "100"]
    cmd += ["--w6p-messages", "256", "--timeout", "60", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=160)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    floors = json.loads(out.read_text())["systems"]
    assert [floor["system"] for floor in floors] == ["python-floor", "python-floor-log"]
    for floor in floors:
        assert not floor["errors"], floor["errors"]
        assert set(floor["verify"]) == {"W1W2", "W6W7"}
        for name, v in floor["verify"].items():
            assert v["ok"] and v["delivered"] == v["expected"] > 0, (name, v)
        assert floor["phases"]["W5"]["messages"] == floor["phases"]["W5"]["sent"] == 100
        assert "W3-send" not in floor["phases"]
    assert proc.returncode == 0


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("system", "verified", "where"),
    [
        ("mailslot-pg", {"W1W2", "W3", "XPUSH"}, "one node"),
        ("mailslot-pg3", {"W1W2", "XPUSH"}, "node a → node b"),
    ],
)
def test_bench_postgres_tiny(tmp_path: Path, system: str, verified: set[str], where: str) -> None:
    """Mailslot on PostgreSQL, one node and three nodes on one schema: every phase runs
    and verifies, every send to a user that exists is acknowledged, whichever node it
    was created on; CPU is split into the nodes' and PostgreSQL's; the schema is dropped."""
    require_postgres()
    before = bench_schemas()
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "bench", "--quick", "--systems", system]
    cmd += ["--phases", "W1,W2,W3,XPUSH", "--users", "20", "--messages", "200"]
    cmd += ["--bc-users", "50", "--bc-messages", "3", "--push-users", "30", "--push-rate", "60"]
    cmd += ["--push-seconds", "0.5", "--procs", "2", "--senders", "2", "--timeout", "60"]
    cmd += ["--json", str(out)]
    env = os.environ | {"MAILSLOT_BENCH_POSTGRES": SERVER_URL}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=220, env=env)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    [s] = res["systems"]
    assert not s.get("skipped") and not s["errors"], (s.get("skipped"), s["errors"])
    phases, verify = s["phases"], s["verify"]
    assert set(verify) == verified
    for name, v in verify.items():
        assert v["ok"] and v["send_errors"] == 0 and v["delivered"] > 0, (name, v)
    assert verify["W1W2"]["delivered"] == 200 and verify["XPUSH"]["delivered"] == 30
    xpush = phases["XPUSH"]
    assert xpush["where"] == where
    assert xpush["pushes_missing"] == 0 and xpush["push_ms_p99"] < 5000
    postgres = 0.0
    for name, f in phases.items():
        if "server_cpu_parts_s" in f:
            parts = f["server_cpu_parts_s"]
            counted = parts["node"] + parts["postgres"] + parts["postgres_hub"]
            assert abs(counted - f["server_cpu_s"]) < 0.01, name
            postgres += parts["postgres"] + parts["postgres_hub"]
    assert postgres > 0
    summary = res["cluster"][system]
    assert summary["node_cpu_per_1k"] + summary["postgres_cpu_per_1k"] > 0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "### Cluster mode (PostgreSQL)" in proc.stdout
    assert bench_schemas() <= before  # the bench dropped the schema it made
