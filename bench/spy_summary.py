"""Where the server's time goes, from a py-spy raw profile of one phase.

``python -m bench.spy_summary FILE --messages N [--rate 1000]`` reads the stacks
that ``python -m bench --profile py-spy --profile-phase W6`` wrote (all threads,
idle samples included) and sorts every sample of the event-loop thread and of
the SQLite writer thread into the steps of a send: read, decode, dispatch, store
hand-off, SQL, commit, hand-back, reply, or idle. Each sample stands for
1/rate seconds of one thread's wall time, so the table gives microseconds of
wall time per message for each step.

A sample is filed under the step of its innermost frame that a rule names; the
general steps (the session loop, the event loop, the writer's loop) only when no
specific one matches. SQLite statements are told apart by the text of the
source line (``BEGIN``, ``COMMIT``), read from the installed package.
"""

from __future__ import annotations

import argparse
import linecache
import re
from collections import Counter
from pathlib import Path

import mailslot

PACKAGE = Path(mailslot.__file__).resolve().parent.parent
FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>.+):(?P<line>\d+)\)$")

# (step, function names or source-line words to look for) from the innermost frame out
LOOP_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("idle: waiting in epoll", ("EpollSelector.select",)),
    ("reply: socket send", ("_SelectorSocketTransport.write",)),
    ("read: socket recv", ("_read_ready__data_received", "_read_ready__get_buffer")),
    (
        "hand-back: wake-up from the writer, futures",
        ("_read_from_self", "_resolve", "Future.set_result", "_process_self_data"),
    ),
    (
        "store hand-off: job, future, queue.put",
        ("SQLiteStore._submit", "SQLiteStore.enqueue", "SQLiteStore._call"),
    ),
    ("read: task wake-up (login, passwd)", ("Task.__step", "Task.__wakeup")),
    ("decode: split lines, parse JSON", ("LineSplitter.feed", "decode_request")),
    ("reply: format the acknowledgement", ("stored", "format_time", "encode", "error_frame")),
    (
        "dispatch: validate, route",
        ("Session._take_send", "Session._prepare_send", "Session._admit", "recipients"),
    ),
    (
        "reply: order and write",
        ("Session._write_due", "Session._slot", "Session.write", "TCPConnection.write"),
    ),
]
LOOP_GENERAL: list[tuple[str, tuple[str, ...]]] = [
    (
        "dispatch: session core",
        ("Session.receive", "Session._take", "Session._advance", "Session._store_sends"),
    ),
    ("read: transport callback", ("TCPConnection.data_received",)),
    # a callback in C at the top of the stack: resuming a task, running future callbacks
    ("event loop: run callbacks, resume tasks", ("BaseEventLoop.", "Handle._run", "_run_once")),
    # uvloop's loop and transports are C: py-spy sees only the frame that started them,
    # so waiting in epoll and the C transports' own work fall here together
    ("event loop in C (uvloop): epoll wait or transport work", ("Runner.run",)),
]
WRITER_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("commit: COMMIT (WAL write + fsync)", ("line:COMMIT",)),
    ("commit: BEGIN IMMEDIATE", ("line:BEGIN",)),
    ("hand-back: call_soon_threadsafe", ("call_soon_threadsafe", "_write_to_self")),
    ("SQL: the send's rows", ("_write_sends", "_run_together", "_run_alone")),
    ("free-space check (statvfs)", ("_room_above_floor", "_free_bytes")),
    ("metrics", ("CommitStats", "Histogram")),
    ("commit delay: waiting for company", ("line:time.sleep(COMMIT_DELAY)",)),
    ("idle: waiting for jobs", ("line:self._jobs.get()",)),
    ("batching: take and sort jobs", ("_take_new_jobs", "_next_batch", "_take")),
]
WRITER_GENERAL: list[tuple[str, tuple[str, ...]]] = [("writer: other", ("SQLiteStore._run",))]
Rules = list[tuple[str, tuple[str, ...]]]


def _source(file: str, line: int) -> str:
    path = PACKAGE / file
    return linecache.getline(str(path), line) if path.exists() else ""


def _matches(keys: tuple[str, ...], func: str, text: str) -> bool:
    return any(key[5:] in text if key.startswith("line:") else key in func for key in keys)


def classify(frames: list[str], rules: Rules, general: Rules) -> str:
    parsed = []
    for raw in reversed(frames):
        m = FRAME.match(raw)
        if m is None:
            parsed.append((raw, ""))
        else:
            own = m["file"].startswith("mailslot/")
            parsed.append((m["func"], _source(m["file"], int(m["line"])) if own else ""))
    for func, text in parsed:
        for step, keys in rules:
            if _matches(keys, func, text):
                return step
    for step, keys in general:
        if any(_matches(keys, func, text) for func, text in parsed):
            return step
    return "unattributed"


def summarize(path: Path) -> dict[str, Counter[str]]:
    """Samples per thread role ("event loop", "writer", "other") and step."""
    out: dict[str, Counter[str]] = {"event loop": Counter(), "writer": Counter()}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        thread, _, rest = stack.partition(";")
        frames = rest.split(";") if rest else []
        if "MainThread" in thread:
            out["event loop"][classify(frames, LOOP_RULES, LOOP_GENERAL)] += int(count)
        elif "mailslot-sqlite" in thread:
            out["writer"][classify(frames, WRITER_RULES, WRITER_GENERAL)] += int(count)
    return out


def render(summary: dict[str, Counter[str]], messages: int, rate: int) -> str:
    rows = [
        "| thread | step | samples | share of the thread | µs per message (wall) |",
        "|---|---|---|---|---|",
    ]
    for role, steps in summary.items():
        total = sum(steps.values()) or 1
        for step, n in steps.most_common():
            us = n / rate / messages * 1e6
            rows.append(f"| {role} | {step} | {n:,} | {n / total:.1%} | {us:,.1f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.spy_summary", description=__doc__)
    ap.add_argument("file", type=Path, help="py-spy raw output (mailslot-py-spy-W6-PID.txt)")
    ap.add_argument("--messages", type=int, required=True, help="messages of the phase")
    ap.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    args = ap.parse_args(argv)
    print(render(summarize(args.file), args.messages, args.rate))


if __name__ == "__main__":
    main()
