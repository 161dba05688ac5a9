"""The server's log: UTC ISO 8601 timestamps, text or JSON lines, stderr by default
(journald keeps what a service writes there). Repeats are summarised per source and
interval by throttle.RepeatLog.

What is logged never holds message texts or passwords: the server logs names,
addresses, counts and error codes only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class _Seconds:
    """The text of the second a record was made in, formatted once per second: the
    datetime round trip was a fifth of a log line's cost, and a short session writes two."""

    last = (-1, "")  # one tuple, so that threads logging at once never pair them wrongly

    @classmethod
    def of(cls, second: int) -> str:
        last = cls.last
        if last[0] != second:
            last = second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            cls.last = last
        return last[1]


def utc_timestamp(record: logging.LogRecord) -> str:
    """`2026-11-26T02:24:16.123Z`: UTC, in milliseconds, as datetime's isoformat gives it
    (the time rounded to microseconds, then cut to milliseconds)."""
    second = int(record.created)
    microseconds = round((record.created - second) * 1_000_000)
    if microseconds == 1_000_000:
        second, microseconds = second + 1, 0
    return f"{_Seconds.of(second)}.{microseconds // 1000:03d}Z"


class TextFormatter(logging.Formatter):
    """`2026-11-26T02:24:16.123Z INFO mailslot.server: listening on …`"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{utc_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": utc_timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


FORMATTERS: dict[str, type[logging.Formatter]] = {"text": TextFormatter, "json": JsonFormatter}


class TurnHandler(logging.StreamHandler[TextIO]):
    """Writes the lines logged in one turn of the event loop together, when the turn ends.

    A short session logs two lines (login, disconnect), many sessions end in the same
    turn, and in a profile of 10,000 of them the write and flush of each line took two
    thirds of its logging's wall time. Warnings and errors, and lines from threads
    without an event loop, are written at once, after any waiting.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)
        loop = _running_loop() if record.levelno < logging.WARNING else None
        if loop is None:
            self._write_pending()
        elif self._scheduled_on is not loop:  # a loop closed before its turn ended
            self._scheduled_on = loop
            loop.call_soon(self._end_of_turn)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # made by Handler.__init__
            self._write_pending()
            super().flush()

    def _end_of_turn(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._scheduled_on = None
            self._write_pending()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        text, self._pending = "".join(self._pending), []
        try:
            self.stream.write(text)
            self.stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": text.rstrip("\n")}))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def setup_logging(level: str, log_format: str, stream: TextIO | None = None) -> None:
    """Send the process's log to stderr (or `stream`) in the given format."""
    handler = TurnHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(FORMATTERS[log_format]())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    set_level(level)
    # Neither format shows a record's thread, process or source line: do not collect
    # them (the Logging HOWTO's "Optimization"; S17's lines come once per login and
    # per disconnect, so their cost counts in a short session's).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # no stack walk for the source line (HOWTO, "Optimization")


def set_level(level: str) -> None:
    logging.getLogger().setLevel(LEVELS[level])
