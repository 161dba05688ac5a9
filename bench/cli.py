"""``python -m bench``: run the store-and-forward workload through each system."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from bench import cluster, web
from bench.base import Params, System
from bench.procs import raise_nofile
from bench.report import render
from bench.runner import ALL_PHASES, run_system

QUICK = Params(
    users=200,
    messages=10_000,
    bc_users=1_000,
    conns=1_000,
    lat_seconds=1.0,
    w6_users=1_000,
    w6_conns=100,
    w6_messages=2_000,
    w6p_messages=6_400,
    push_seconds=1.0,
    timeout=120.0,
)
FULL = Params()
SYSTEMS = ("mailslot", "mosquitto", "nats", "nats-always", "mailslot-pg", "mailslot-pg3")
FLOORS = ("python-floor", "python-floor-log")  # yardsticks, run only when named
RESULTS = Path(__file__).resolve().parent / "results"


def make_system(name: str, workdir: Path, p: Params, args: argparse.Namespace) -> System:
    wd = workdir / name
    wd.mkdir(parents=True, exist_ok=True)
    if name == "mailslot":
        from bench.sys_mailslot import Mailslot

        return Mailslot(
            wd,
            p,
            extra_args=shlex.split(args.mailslot_args or ""),
            profile=args.profile,
            profile_phase=args.profile_phase.upper() if args.profile_phase else None,
        )
    if name in ("mailslot-pg", "mailslot-pg3"):
        from bench.cluster import MailslotPg, MailslotPg3

        cls = MailslotPg if name == "mailslot-pg" else MailslotPg3
        return cls(wd, p, extra_args=shlex.split(args.mailslot_args or ""))
    if name == "mosquitto":
        from bench.sys_mqtt import Mosquitto

        return Mosquitto(wd, p)
    if name in ("nats", "nats-always"):
        from bench.sys_nats import NatsJetStream

        return NatsJetStream(wd, p, always=name == "nats-always")
    if name in FLOORS:
        from bench.sys_floor import PythonFloor

        return PythonFloor(wd, p, durable=name == "python-floor-log")
    raise SystemExit(f"unknown system {name!r}; choose from {', '.join(SYSTEMS + FLOORS)}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, < 1 minute")
    mode.add_argument("--full", action="store_true", help="the issue's sizes (default)")
    ap.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated subset of {','.join(SYSTEMS)}; also the yardsticks "
        f"{','.join(FLOORS)} (docs/benchmarks.md, the Python floor)",
    )
    ap.add_argument(
        "--phases",
        default=",".join((*ALL_PHASES, "WEB", "XPUSH")),
        help="comma-separated subset of W1,...,W5,W6,W6p,W7,WEB,XPUSH (W1 and W2 run "
        "together; W7 always follows W6/W6p, whose messages it drains and verifies; WEB: "
        "browsers over WebSocket against TCP clients, Mailslot only; the PostgreSQL "
        "systems run W1, W2, W3 (one node) and XPUSH, the push from one node to another)",
    )
    for f in fields(Params):
        ap.add_argument(
            "--" + f.name.replace("_", "-"),
            type=type(f.default),
            default=None,
            help=f"override (full default {f.default})",
        )
    ap.add_argument("--json", help="also write the JSON results here")
    ap.add_argument("--markdown", help="also write the Markdown table here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    ap.add_argument(
        "--mailslot-args", default="", help="extra arguments for `mailslot server` (quoted)"
    )
    ap.add_argument(
        "--profile",
        choices=("none", "cprofile", "py-spy"),
        default="none",
        help="profile the Mailslot server: cProfile (main thread, mailslot.prof in "
        "the workdir, use --keep) or py-spy (all threads, raw stacks in "
        "bench/results); figures from a profiled run are not comparable",
    )
    ap.add_argument(
        "--profile-phase",
        choices=("W1", "W5", "W6", "W6p", "W7"),
        help="with --profile py-spy: record only this phase's measured part "
        "(default: the server's whole life)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    base = QUICK if args.quick else FULL
    kw = asdict(base)
    for f in fields(Params):
        v = getattr(args, f.name)
        if v is not None:
            kw[f.name] = v
    p = Params(**kw)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    phases = tuple(x.strip().upper() for x in args.phases.split(",") if x.strip())
    nofile = raise_nofile()
    if p.conns + 200 > nofile:
        print(
            f"warning: RLIMIT_NOFILE is {nofile}; W4 with {p.conns} connections may fail",
            file=sys.stderr,
        )
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    workdir = Path(tempfile.mkdtemp(prefix="mailslot-bench-"))
    res: dict[str, Any] = {
        "meta": {
            "mode": "quick" if args.quick else "full",
            "started": started,
            "command": "python -m bench "
            + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
            "cpus": os.cpu_count(),
            "params": asdict(p),
            "phases": phases,
            "workdir": str(workdir),
            "python": sys.version.split()[0],
        },
        "systems": [],
    }
    try:
        for name in systems:
            sysm = make_system(name, workdir, p, args)
            res["systems"].append(run_system(sysm, phases))
        if "WEB" in phases and "mailslot" in systems:  # Mailslot's own web clients
            res["web"] = asyncio.run(
                web.measure(200 if args.quick else 5000, 1000, 2 if args.quick else 10)
            )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    stamp = started.replace(":", "").replace("-", "")
    res["cluster"] = cluster.summary(res)
    md = render(res) + ("\n" + web.markdown(res["web"]) if "web" in res else "")
    cluster_md = cluster.markdown(res)
    md += "\n" + cluster_md if cluster_md else ""
    out_json = RESULTS / f"bench-{stamp}.json"
    out_md = RESULTS / f"bench-{stamp}.md"
    out_json.write_text(json.dumps(res, indent=1))
    out_md.write_text(md)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(md)
    print()
    print(md)
    print(f"results: {out_json} {out_md}")
    ok = all(
        not s.get("errors") and all(v["ok"] for v in s.get("verify", {}).values())
        for s in res["systems"]
    )
    return 0 if ok else 1
