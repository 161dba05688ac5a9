"""The server's log: UTC ISO 8601 timestamps, text or JSON lines, stderr by default
(journald keeps what a service writes there). Repeats are summarised per source and
interval by throttle.RepeatLog.

What is logged never holds message texts or passwords: the server logs names,
addresses, counts and error codes only.
"""

from __future__ import annotations

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


def utc_timestamp(record: logging.LogRecord) -> str:
    at = datetime.fromtimestamp(record.created, UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def setup_logging(level: str, log_format: str, stream: TextIO | None = None) -> None:
    """Send the process's log to stderr (or `stream`) in the given format."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
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
