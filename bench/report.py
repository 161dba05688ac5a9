"""Markdown tables from the JSON results."""

from __future__ import annotations

from typing import Any


def _f(x: Any, nd: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if x != x:  # NaN
            return "–"
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        return f"{x:.{nd}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _loss(v: dict[str, Any] | None) -> str:
    if not v:
        return "–"
    s = f"{v['lost']}/{v['duplicated']}/{v['misrouted']}/{v['leftover']}"
    if v.get("foreign") or v.get("send_errors"):
        s += f" (+{v.get('foreign', 0)} foreign, {v.get('send_errors', 0)} send errors)"
    if v["delivered"] != v["expected"]:
        s += f" ({v['delivered']}/{v['expected']} delivered)"
    return s


def summary_table(res: dict[str, Any]) -> str:
    rows = [
        "| system | ack means | W1 msg/s | W2 msg/s | W1+W2 server CPU-s /1k msg | "
        "loss W1+W2 (lost/dup/misr/left) | W3 commit ms p50 / max | loss W3 | "
        "W4 KiB/conn | W4 logins/s | W5 ack ms p50 / p99 | W5 check ms p50 / p99 | "
        "peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in res["systems"]:
        ph = s.get("phases", {})
        if s.get("skipped"):
            rows.append(f"| {s['system']} | skipped: {s['skipped']} |" + " |" * 11)
            continue
        w1, w2, w12 = ph.get("W1", {}), ph.get("W2", {}), ph.get("W1+W2", {})
        w3, w4, w5 = ph.get("W3-send", {}), ph.get("W4", {}), ph.get("W5", {})
        ver = s.get("verify", {})
        name = s["system"] + (" ⚠" if s.get("errors") else "")
        rows.append(
            f"| {name} | {s['ack']} | {_f(w1.get('msgs_per_s'))} | "
            f"{_f(w2.get('msgs_per_s'))} | {_f(w12.get('server_cpu_per_1k'), 4)} | "
            f"{_loss(ver.get('W1W2'))} | "
            f"{_f(w3.get('commit_ms_p50'))} / {_f(w3.get('commit_ms_max'))} | "
            f"{_loss(ver.get('W3'))} | {_f(w4.get('rss_per_conn_kib'))} | "
            f"{_f(w4.get('logins_per_s'), 0)} | "
            f"{_f(w5.get('ack_ms_p50'))} / {_f(w5.get('ack_ms_p99'))} | "
            f"{_f(w5.get('check_ms_p50'))} / {_f(w5.get('check_ms_p99'))} | "
            f"{_f(s.get('server_peak_rss_kib', 0) / 1024, 1)} |"
        )
    return "\n".join(rows)


def users_table(res: dict[str, Any]) -> str:
    """W5–W7, the workloads that look like users, with CPU ratios to Mosquitto's."""
    rows = [
        "| system | W5 server CPU-s /1k | W6 server CPU-s /1k | W6 msg/s | W6 ack ms p50 / p99 | "
        "W6p server CPU-s /1k | W6p msg/s | W6p ack ms p50 / p99 | W7 server CPU ms /login | "
        "W7 login ms p50 / p99 | W7 session ms p50 / p99 | loss W6+W7 (lost/dup/misr/left) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in res["systems"]:
        ph = s.get("phases", {})
        if s.get("skipped") or not {"W5", "W6", "W6p", "W7"} & ph.keys():
            continue
        w5, w6, w6p, w7 = (ph.get(k, {}) for k in ("W5", "W6", "W6p", "W7"))
        rows.append(
            f"| {s['system']} | {_f(w5.get('server_cpu_per_1k'), 4)} | "
            f"{_f(w6.get('server_cpu_per_1k'), 4)} | {_f(w6.get('msgs_per_s'), 0)} | "
            f"{_f(w6.get('ack_ms_p50'))} / {_f(w6.get('ack_ms_p99'))} | "
            f"{_f(w6p.get('server_cpu_per_1k'), 4)} | {_f(w6p.get('msgs_per_s'), 0)} | "
            f"{_f(w6p.get('ack_ms_p50'))} / {_f(w6p.get('ack_ms_p99'))} | "
            f"{_f(w7.get('server_cpu_ms_per_login'), 3)} | "
            f"{_f(w7.get('login_ms_p50'))} / {_f(w7.get('login_ms_p99'))} | "
            f"{_f(w7.get('session_ms_p50'))} / {_f(w7.get('session_ms_p99'))} | "
            f"{_loss(s.get('verify', {}).get('W6W7'))} |"
        )
    return "\n".join(rows) if len(rows) > 2 else ""


RATIO_FIGURES = (
    ("W1+W2", "server_cpu_per_1k"),
    ("W5", "server_cpu_per_1k"),
    ("W6", "server_cpu_per_1k"),
    ("W6p", "server_cpu_per_1k"),
    ("W7", "server_cpu_ms_per_login"),
)


def ratio_table(res: dict[str, Any]) -> str:
    """Server CPU per message (per login for W7) as a multiple of Mosquitto's, same run."""
    by_name = {s["system"]: s.get("phases", {}) for s in res["systems"]}
    base = by_name.get("mosquitto")
    if not base:
        return ""
    rows = [
        "| server CPU ÷ Mosquitto's | " + " | ".join(p for p, _ in RATIO_FIGURES) + " |",
        "|---" * (len(RATIO_FIGURES) + 1) + "|",
    ]
    for name, ph in by_name.items():
        if name == "mosquitto" or not ph:
            continue
        cells = []
        for phase, key in RATIO_FIGURES:
            mine, theirs = ph.get(phase, {}).get(key), base.get(phase, {}).get(key)
            cells.append(f"{mine / theirs:.2f}×" if mine and theirs else "–")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows) if len(rows) > 2 else ""


def phase_table(res: dict[str, Any]) -> str:
    rows = [
        "| system | phase | wall s | messages | msg/s | server CPU-s | server CPU-s /1k | "
        "generator CPU-s (procs) | server peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in res["systems"]:
        for name, f in s.get("phases", {}).items():
            msgs = f.get("messages") or f.get("users") or f.get("connections")
            per1k = f.get("server_cpu_per_1k")
            if per1k is None and f.get("server_cpu_per_1k_logins") is not None:
                per1k = f["server_cpu_per_1k_logins"]
            if per1k is None and msgs and f.get("server_cpu_s") is not None:
                per1k = f["server_cpu_s"] / msgs * 1000
            rate = f.get("msgs_per_s") or f.get("logins_per_s")
            procs = f.get("gen_procs")
            gen = f"{_f(f.get('gen_cpu_s'))}" + (f" ({procs})" if procs else "")
            peak = f.get("server_rss_peak_kib")
            rows.append(
                f"| {s['system']} | {name} | {_f(f.get('wall_s'), 3)} | {_f(msgs)} | "
                f"{_f(rate, 0)} | {_f(f.get('server_cpu_s'))} | {_f(per1k, 4)} | {gen} | "
                f"{_f(peak / 1024, 1) if peak else '–'} |"
            )
    return "\n".join(rows)


def render(res: dict[str, Any]) -> str:
    m = res["meta"]
    head = (
        f"Mailslot bench, mode {m['mode']}, {m['started']}, {m['cpus']} CPUs, "
        f"users={m['params']['users']} messages={m['params']['messages']} "
        f"bc_users={m['params']['bc_users']} conns={m['params']['conns']} "
        f"rate={m['params']['rate']}/s for {m['params']['lat_seconds']} s\n"
        f"Command: `{m['command']}`\n"
    )
    notes = []
    for s in res["systems"]:
        for e in s.get("errors", [])[:1]:
            notes.append(f"- ⚠ {s['system']}: {e}")
    tables = [summary_table(res), users_table(res), ratio_table(res), phase_table(res)]
    return (
        head
        + "\n"
        + "\n\n".join(t for t in tables if t)
        + "\n"
        + ("\n" + "\n".join(notes) + "\n" if notes else "")
    )
