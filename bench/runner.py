"""Drive the workload through one system and turn phase runs into figures."""

from __future__ import annotations

import collections
import traceback
from typing import Any

from bench.base import Params, System, Unsupported, percentile
from bench.harness import PhaseRun
from bench.payload import make_plan, verify_broadcast, verify_one_to_one

ALL_PHASES = ("W1", "W2", "W3", "W4", "W5", "W6", "W6P", "W7")
W6_BASE = 10_000  # W6 recipients are users u10000.. (apart from W1's, W3's and W5's)


def figures(run: PhaseRun, messages: int) -> dict[str, Any]:
    per_1k = run.server_cpu / messages * 1000 if messages else None
    return {
        "wall_s": round(run.wall, 4),
        "messages": messages,
        "msgs_per_s": round(messages / run.wall, 1) if run.wall > 0 and messages else None,
        "server_cpu_s": round(run.server_cpu, 3),
        "server_cpu_per_1k": round(per_1k, 5) if per_1k is not None else None,
        "gen_cpu_s": round(run.gen_cpu, 3),
        "gen_procs": run.gen_procs,
        "server_rss_before_kib": run.rss_before_kib,
        "server_rss_after_kib": run.rss_after_kib,
        "server_rss_peak_kib": run.rss_peak_kib,
        "peak_is_phase": run.peak_is_phase,
        "server_threads_cpu_s": run.threads,
    } | (
        {"server_cpu_parts_s": {k: round(v, 3) for k, v in run.cpu_parts.items()}}
        if len(run.cpu_parts) > 1
        else {}
    )


def _log(msg: str) -> None:
    print(msg, flush=True)


def _pcts(values: list[float], prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}_p50": round(percentile(values, 50), 3),
        f"{prefix}_p99": round(percentile(values, 99), 3),
        f"{prefix}_max": round(max(values), 3) if values else None,
    }


def run_users_like(sysm: System, phases: tuple[str, ...], out: dict[str, Any]) -> None:
    """W6 (closed loop, 1 in flight), W6p (16 in flight, one write each), then W7: every
    recipient logs in, checks, acks and leaves on a connection of its own, which drains
    and verifies what W6 and W6p stored."""
    p: Params = sysm.p
    ph: dict[str, Any] = out["phases"]
    users = [W6_BASE + i for i in range(p.w6_users)]
    r = sysm.setup_users(users)
    ph["W6-setup"] = figures(r, 0) | {
        "users": p.w6_users,
        "logins_per_s": round(p.w6_users / r.wall, 1) if r.wall else None,
    }
    _log(f"[{sysm.name}] W6 setup {p.w6_users} users: {r.wall:.2f} s")
    variants = [
        (v, inflight, n)
        for v, inflight, n in (("W6", 1, p.w6_messages), ("W6P", p.w6_inflight, p.w6p_messages))
        if v in phases
    ]
    # plan[seq] = recipient; W6p's seqs follow W6's
    plan = [W6_BASE + u for u in make_plan(p.w6_users, sum(v[2] for v in variants), p.seed + 6)]
    acked: list[int] = []
    first = 0
    for variant, inflight, n in variants:
        items = [(s, plan[s]) for s in range(first, first + n)]
        first += n
        r = sysm.closed_loop(items, inflight)
        ok = [s for x in r.results for s in x["acked"]]
        lat = [v for x in r.results for v in x["lat_ms"]]
        acked += ok
        name = "W6" if variant == "W6" else "W6p"
        ph[name] = (
            figures(r, len(ok))
            | _pcts(lat, "ack_ms")
            | {
                "connections": p.w6_conns,
                "inflight": inflight,
                "send_errors": sum(x.get("n_errors", 0) for x in r.results),
            }
        )
        _log(
            f"[{sysm.name}] {name} {len(ok)}/{len(items)} acked over {p.w6_conns} conns "
            f"x {inflight} in flight: {r.wall:.2f} s, server {r.server_cpu:.2f} CPU-s, "
            f"ack p50 {ph[name]['ack_ms_p50']} ms p99 {ph[name]['ack_ms_p99']} ms"
        )
    expected = collections.Counter(plan[s] for s in acked)
    r = sysm.login_drain(users, dict(expected))
    got = [g for x in r.results for g in x["got"]]
    logins = [v for x in r.results for v in x["login_ms"]]
    sessions = [v for x in r.results for v in x["session_ms"]]
    ph["W7"] = (
        figures(r, len(logins))  # per login: "messages" are the logins here
        | _pcts(logins, "login_ms")
        | _pcts(sessions, "session_ms")
        | {
            "users": len(logins),
            "delivered": len(got),
            "logins_per_s": round(len(logins) / r.wall, 1) if r.wall else None,
            "server_cpu_ms_per_login": round(r.server_cpu / len(logins) * 1000, 4)
            if logins
            else None,
        }
    )
    _log(
        f"[{sysm.name}] W7 {len(logins)} logins, {len(got)} delivered: {r.wall:.2f} s, "
        f"{ph['W7']['server_cpu_ms_per_login']} ms CPU per login"
    )
    left = sysm.leftover(users)
    v = verify_one_to_one(plan, acked, got, left)
    out["verify"]["W6W7"] = v.as_dict()
    _log(f"[{sysm.name}] W6+W7 verify: {v.as_dict()}")


def run_system(sysm: System, phases: tuple[str, ...]) -> dict[str, Any]:
    p: Params = sysm.p
    out: dict[str, Any] = {
        "system": sysm.name,
        "label": sysm.label,
        "ack": sysm.ack_meaning,
        "broadcast_note": sysm.broadcast_note,
        "conn_note": sysm.conn_note,
        "check_note": sysm.check_note,
        "phases": {},
        "verify": {},
        "errors": [],
    }
    if sysm.unsupported:
        out["skipped"] = sysm.unsupported
        _log(f"[{sysm.name}] skipped: {sysm.unsupported}")
        return out
    ph: dict[str, Any] = out["phases"]
    phases = sysm.phases(phases)
    try:
        sysm.start()
        out["version"] = sysm.version()
        pid = sysm.server.pid if sysm.server else "?"
        _log(f"[{sysm.name}] started {out['version']} (pid {pid})")
        users = list(range(p.users))
        if "W1" in phases or "W2" in phases:
            plan = make_plan(p.users, p.messages, p.seed)
            r = sysm.setup_users(users)
            ph["setup"] = figures(r, 0) | {
                "users": p.users,
                "logins_per_s": round(p.users / r.wall, 1) if r.wall else None,
            }
            _log(f"[{sysm.name}] setup {p.users} users: {r.wall:.2f} s")
            r = sysm.store(plan)
            acked = [s for x in r.results for s in x["acked"]]
            ph["W1"] = figures(r, len(acked))
            refused = [e for x in r.results for e in x.get("errors", [])]
            if refused:
                ph["W1"]["send_errors_sample"] = refused[:3]
                out["errors"].append(
                    f"W1: {p.messages - len(acked)} sends refused, e.g. {refused[0]}"
                )
                _log(f"[{sysm.name}] W1 refused sends, e.g. {refused[0]}")
            _log(
                f"[{sysm.name}] W1 store {len(acked)}/{p.messages} acked: {r.wall:.2f} s, "
                f"server {r.server_cpu:.2f} CPU-s"
            )
            expected = collections.Counter(plan)
            r = sysm.drain(users, dict(expected))
            got = [g for x in r.results for g in x["got"]]
            ph["W2"] = figures(r, len(got))
            _log(
                f"[{sysm.name}] W2 drain {len(got)} delivered: {r.wall:.2f} s, "
                f"server {r.server_cpu:.2f} CPU-s"
            )
            left = sysm.leftover(users)
            v = verify_one_to_one(plan, acked, got, left)
            out["verify"]["W1W2"] = v.as_dict()
            w1, w2 = ph["W1"], ph["W2"]
            if w1["messages"]:
                ph["W1+W2"] = {
                    "messages": w1["messages"],
                    "wall_s": round(w1["wall_s"] + w2["wall_s"], 4),
                    "server_cpu_s": round(w1["server_cpu_s"] + w2["server_cpu_s"], 3),
                    "server_cpu_per_1k": round(
                        (w1["server_cpu_s"] + w2["server_cpu_s"]) / w1["messages"] * 1000, 5
                    ),
                    "gen_cpu_s": round(w1["gen_cpu_s"] + w2["gen_cpu_s"], 3),
                }
            _log(f"[{sysm.name}] W1+W2 verify: {v.as_dict()}")
        if "W3" in phases:
            bc_users = list(range(p.bc_users))
            r = sysm.bcast_setup(bc_users)
            ph["W3-setup"] = figures(r, 0) | {
                "users": p.bc_users,
                "logins_per_s": round(p.bc_users / r.wall, 1) if r.wall else None,
            }
            _log(f"[{sysm.name}] W3 setup {p.bc_users} users: {r.wall:.2f} s")
            seqs = [900_000_000 + i for i in range(p.bc_messages)]
            r = sysm.bcast_send(seqs)
            res = r.results[0]
            lat = res["lat_ms"]
            recips = sysm.bcast_recipients(bc_users)
            ph["W3-send"] = figures(r, len(res["acked"])) | {
                "commit_ms_p50": round(percentile(lat, 50), 3),
                "commit_ms_max": round(max(lat), 3) if lat else None,
                "commit_ms_all": [round(x, 3) for x in lat],
                "recipients": res.get("recipients", -1)
                if res.get("recipients", -1) >= 0
                else len(recips),
            }
            _log(
                f"[{sysm.name}] W3 broadcast x{len(seqs)}: commit p50 "
                f"{percentile(lat, 50):.2f} ms, max {max(lat) if lat else -1:.2f} ms, "
                f"{len(recips)} recipients"
            )
            r = sysm.drain(recips, dict.fromkeys(recips, len(seqs)))
            got = [g for x in r.results for g in x["got"]]
            ph["W3-drain"] = figures(r, len(got))
            _log(f"[{sysm.name}] W3 drain {len(got)} delivered: {r.wall:.2f} s")
            left = sysm.leftover(recips)
            v = verify_broadcast(res["acked"], recips, got, left)
            v.send_errors = len(seqs) - len(res["acked"])
            out["verify"]["W3"] = v.as_dict()
            _log(f"[{sysm.name}] W3 verify: {v.as_dict()}")
        if "W4" in phases:
            r = sysm.connections(p.conns)
            connected = sum(x["connected"] for x in r.results)
            d = r.rss_after_kib - r.rss_before_kib
            ph["W4"] = figures(r, 0) | {
                "connections": connected,
                "logins_per_s": round(connected / r.wall, 1) if r.wall else None,
                "rss_per_conn_kib": round(d / connected, 2) if connected else None,
                "server_cpu_per_1k_logins": round(r.server_cpu / connected * 1000, 4)
                if connected
                else None,
            }
            _log(
                f"[{sysm.name}] W4 {connected} idle clients: {r.wall:.2f} s, "
                f"{ph['W4']['rss_per_conn_kib']} KiB/conn"
            )
        if {"W6", "W6P", "W7"} & set(phases):
            # before W5, which leaves its messages queued for W1's users
            run_users_like(sysm, phases, out)
        if "W5" in phases:
            if "W1" not in phases and "W2" not in phases:
                # W5 sends to W1's users: they must exist (Mailslot refuses unknown names)
                r = sysm.setup_users(users)
                ph["setup"] = figures(r, 0) | {"users": p.users}
            r = sysm.latency(users)
            lat = [x for res in r.results for x in res["lat_ms"]]
            chk = [x for res in r.results for x in res.get("check_ms", [])]
            sent = sum(res["sent"] for res in r.results)
            ackd = sum(res["acked"] for res in r.results)
            if ackd < sent:
                out["errors"].append(f"W5: {sent - ackd} of {sent} sends not acknowledged")
            ph["W5"] = figures(r, ackd) | {
                "offered_rate": p.rate,
                "achieved_rate": round(ackd / r.wall, 1) if r.wall else None,
                "sent": sent,
                "ack_ms_p50": round(percentile(lat, 50), 3),
                "ack_ms_p99": round(percentile(lat, 99), 3),
                "ack_ms_max": round(max(lat), 3) if lat else None,
                "check_ms_p50": round(percentile(chk, 50), 3) if chk else None,
                "check_ms_p99": round(percentile(chk, 99), 3) if chk else None,
                "checks": len(chk),
            }
            _log(
                f"[{sysm.name}] W5 {ackd}/{sent} at {p.rate}/s: ack p50 "
                f"{ph['W5']['ack_ms_p50']} ms p99 {ph['W5']['ack_ms_p99']} ms"
            )
        sysm.more_phases(phases, out)
    except Unsupported as e:
        out["skipped"] = str(e)
        _log(f"[{sysm.name}] skipped: {e}")
    except Exception as e:
        out["errors"].append(f"{type(e).__name__}: {e}")
        out["errors"].append(traceback.format_exc())
        if sysm.server is not None:
            out["errors"].append("server log tail:\n" + sysm.server.log_tail())
        _log(f"[{sysm.name}] FAILED: {e}")
    finally:
        peaks = [v.get("server_rss_peak_kib", 0) for v in ph.values() if isinstance(v, dict)]
        out["server_peak_rss_kib"] = max([0, *[x or 0 for x in peaks]])
        try:
            out["stop_rc"] = sysm.stop()
        except Exception as e:  # pragma: no cover - best effort
            out["errors"].append(f"stop: {e}")
    return out
