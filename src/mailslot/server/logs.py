"""The server's log: UTC ISO 8601 timestamps, text or JSON lines, stderr by default
(journald keeps what a service writes there), and repeats summarised per interval.

What is logged never holds message texts or passwords: the server logs names,
addresses, counts and error codes only.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
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


def set_level(level: str) -> None:
    logging.getLogger().setLevel(LEVELS[level])


class RepeatSummary:
    """Logs the first occurrence of a noisy event per key and interval, counts the
    rest, and logs one summary line per key when its interval is over.

    `note()` is cheap enough for every refused login; summaries go out on the next
    `note()` or `flush()` after the interval (the server calls `flush()` from a timer).
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what  # "refused logins", "slow consumers dropped" …
        self.interval = interval
        self.clock = clock
        self._window_start = clock()
        self._counts: dict[str, int] = {}

    def note(self, key: str, message: str, *args: object) -> None:
        """One occurrence for `key` (e.g. a source address); `message` is logged if it
        is the first for that key in this interval."""
        self._roll()
        seen = self._counts.get(key)
        if seen is None:
            self._counts[key] = 0
            self.logger.info(message, *args)
        else:
            self._counts[key] = seen + 1

    def flush(self) -> None:
        """Log the summaries of an interval that is over."""
        self._roll()

    def _roll(self) -> None:
        now = self.clock()
        if now - self._window_start < self.interval:
            return
        for key, more in self._counts.items():
            if more:
                self.logger.info(
                    "%d more %s from %s in the last %.0f seconds",
                    more,
                    self.what,
                    key,
                    now - self._window_start,
                )
        self._counts = {}
        self._window_start = now
