"""Server processes: start, stop, and read CPU/RSS from /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
# a part of ServerProc.cpu_parts() named so is reported but not counted as the server's
NOT_COUNTED = "not_counted_"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s")


def raise_nofile() -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_own_reaped(pid: int) -> tuple[float, float]:
    """utime+stime of every thread of ``pid``, and of its children that it has reaped,
    in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2 :].split()
    # fields[0] is state (field 3); utime=14, stime=15, cutime=16, cstime=17
    own, reaped = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
    return own / CLK_TCK, reaped / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime+stime of every thread of ``pid`` (and its reaped children), in seconds."""
    return sum(cpu_own_reaped(pid))


def thread_cpu(pid: int) -> dict[int, tuple[float, float, int]]:
    """(user s, system s, context switches) of each live thread of ``pid``, by thread id."""
    out: dict[int, tuple[float, float, int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                data = f.read()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                switches = sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
            fields = data[data.rindex(")") + 2 :].split()
            out[int(tid)] = (int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK, switches)
    return out


def thread_split(
    pid: int,
    before: dict[int, tuple[float, float, int]],
    after: dict[int, tuple[float, float, int]],
) -> dict[str, float]:
    """CPU seconds and context switches (voluntary + involuntary) between two
    :func:`thread_cpu` readings: the main thread (an asyncio server's event loop)
    apart from all the others (a store's writer thread, executors). Threads that
    ended in between are missing."""
    split = dict.fromkeys(("main_user", "main_sys", "other_user", "other_sys"), 0.0)
    split |= dict.fromkeys(("main_switches", "other_switches"), 0)
    for tid, (user, system, switches) in after.items():
        u0, s0, n0 = before.get(tid, (0.0, 0.0, 0))
        who = "main" if tid == pid else "other"
        split[who + "_user"] += user - u0
        split[who + "_sys"] += system - s0
        split[who + "_switches"] += switches - n0
    return {k: round(v, 3) for k, v in split.items()}


def status_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    return out


def reset_peak(pid: int) -> bool:
    """Reset VmHWM (peak RSS) so each phase gets its own peak; False if not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class ServerProc:
    name: str
    argv: list[str]
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    # called with True just before a phase's measured part starts, False once it has ended
    on_measure: Callable[[bool], None] | None = None

    def start(self, timeout: float = 60.0) -> None:
        log = open(self.workdir / f"{self.name}.log", "wb")  # noqa: SIM115 - kept for the process life
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
        )
        log.close()
        wait_port(self.port, self.proc, timeout)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def cpu_parts(self) -> dict[str, float]:
        """CPU-s so far, by part; a system of several processes (nodes and a database)
        reports each part, and the phase's server CPU is their sum (but for NOT_COUNTED
        parts)."""
        return {"server": self.cpu()}

    def threads(self) -> dict[int, tuple[float, float, int]]:
        return thread_cpu(self.pid)

    def rss(self) -> dict[str, int]:
        return status_kib(self.pid)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_tail(self, n: int = 20) -> str:
        p = self.workdir / f"{self.name}.log"
        try:
            return "\n".join(p.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""
