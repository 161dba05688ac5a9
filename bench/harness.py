"""Run one benchmark phase: load-generator processes against one server process.

Each generator process runs one :class:`Worker` in its own asyncio loop:
``prepare()`` (connect, log in: not measured), then, once every process is
ready and the server's CPU counter has been read, ``run()`` (measured), then
optionally holds its connections until the main process has sampled the
server (W4), then ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import resource
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from bench.procs import NOT_COUNTED, ServerProc, reset_peak, thread_split

CTX = mp.get_context("fork")


class Worker:
    """Base class; subclasses are built in the main process and inherited by fork."""

    async def prepare(self) -> None:
        return None

    async def run(self) -> dict[str, Any]:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class PhaseError(RuntimeError):
    pass


@dataclass
class PhaseRun:
    results: list[dict[str, Any]]
    wall: float
    server_cpu: float
    gen_cpu: float
    gen_procs: int
    rss_before_kib: int
    rss_after_kib: int
    rss_peak_kib: int
    peak_is_phase: bool
    threads: dict[str, float] = field(default_factory=dict)  # server CPU-s by thread group
    cpu_parts: dict[str, float] = field(default_factory=dict)  # server CPU-s by part


def _cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _child(w: Worker, ready: Any, go: Any, release: Any, outq: Any, timeout: float) -> None:
    async def amain() -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(w.prepare(), timeout)
        except BaseException:
            outq.put({"error": "prepare: " + traceback.format_exc()})
            ready.abort()
            return
        await loop.run_in_executor(None, ready.wait, timeout)
        await loop.run_in_executor(None, go.wait, timeout)
        t0 = time.monotonic()
        c0 = _cpu_self()
        try:
            res = await asyncio.wait_for(w.run(), timeout)
        except BaseException:
            res = {"error": "run: " + traceback.format_exc()}
        res["t0"] = t0
        res["t1"] = time.monotonic()
        res["cpu"] = _cpu_self() - c0
        outq.put(res)
        if release is not None:
            await loop.run_in_executor(None, release.wait, timeout)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(w.close(), 30)

    try:
        asyncio.run(amain())
    finally:
        outq.close()
        outq.join_thread()
        os._exit(0)


def run_phase(
    server: ServerProc | None,
    workers: list[Worker],
    *,
    timeout: float = 300.0,
    hold: bool = False,
) -> PhaseRun:
    """Run ``workers`` (one process each) and measure the server around ``run()``."""
    n = len(workers)
    ready = CTX.Barrier(n + 1)
    go = CTX.Barrier(n + 1)
    release = CTX.Event() if hold else None
    outq: Any = CTX.Queue()
    procs = [
        CTX.Process(target=_child, args=(w, ready, go, release, outq, timeout), daemon=True)
        for w in workers
    ]
    for p in procs:
        p.start()
    results: list[dict[str, Any]] = []
    try:
        try:
            ready.wait(timeout)
        except Exception as e:
            errs = []
            with contextlib.suppress(Exception):
                while True:
                    errs.append(outq.get(timeout=1.0).get("error", "?"))
            raise PhaseError("a generator failed to prepare:\n" + "\n".join(errs)) from e
        peak_is_phase = False
        rss0 = 0
        parts0: dict[str, float] = {}
        threads0: dict[int, tuple[float, float, int]] = {}
        if server is not None:
            peak_is_phase = reset_peak(server.pid)
            rss0 = server.rss().get("VmRSS", 0)
            parts0 = server.cpu_parts()
            threads0 = server.threads()
            if server.on_measure is not None:
                server.on_measure(True)
        go.wait(timeout)
        deadline = time.monotonic() + timeout + 5
        while len(results) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PhaseError(f"only {len(results)}/{n} generators finished in time")
            results.append(outq.get(timeout=left))
        parts1 = server.cpu_parts() if server is not None else {}
        threads = thread_split(server.pid, threads0, server.threads()) if server else {}
        if server is not None and server.on_measure is not None:
            server.on_measure(False)
        st = server.rss() if server is not None else {}
        if release is not None:
            release.set()
    finally:
        if release is not None:
            release.set()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join(5)
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise PhaseError("generator error:\n" + errors[0])
    wall = max(r["t1"] for r in results) - min(r["t0"] for r in results)
    return PhaseRun(
        results=results,
        wall=wall,
        server_cpu=sum(
            v - parts0.get(k, 0.0) for k, v in parts1.items() if not k.startswith(NOT_COUNTED)
        ),
        gen_cpu=sum(r["cpu"] for r in results),
        gen_procs=n,
        rss_before_kib=rss0,
        rss_after_kib=st.get("VmRSS", 0),
        rss_peak_kib=st.get("VmHWM", 0),
        peak_is_phase=peak_is_phase,
        threads=threads,
        cpu_parts={k: v - parts0.get(k, 0.0) for k, v in parts1.items()},
    )


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """Round-robin split into at most ``parts`` non-empty lists."""
    parts = max(1, min(parts, len(items)))
    return [items[i::parts] for i in range(parts)]


async def bounded_gather(coros: list[Any], limit: int) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))
