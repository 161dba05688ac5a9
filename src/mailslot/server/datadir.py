"""The server's data directory, checked before anything is served from it.

- It must be a real, writable directory; every way it is not gets one sentence.
- One server at a time: an exclusive lock on `mailslot.pid`, which holds the pid of
  the server that has it (the lock, not the file, is the truth: a killed server's
  lock goes with its process).
- `mailslot.initialised` marks a directory whose database was once created: if the
  database is then missing or empty, the data was lost, and starting afresh would
  hide that (and let anyone take the old names). The server refuses to start.
- Private: the directory 0700, its files 0600 whatever the umask; wider modes found
  at start are tightened, and the log says so.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
from pathlib import Path

from mailslot.server.config import StartupError

log = logging.getLogger("mailslot.server")

LOCK_NAME = "mailslot.pid"
MARKER_NAME = "mailslot.initialised"
VIRTUAL_FILE_SYSTEMS = ("/proc", "/sys")

_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "part of the path is a file, not a directory",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.ENAMETOOLONG: "the path is too long",
    errno.ELOOP: "the path has a symbolic link loop",
}


class DataDir:
    """Holds the data directory's lock from open() to close()."""

    def __init__(self, path: Path, database: Path) -> None:
        self.path = path
        self.database = database
        self._lock_fd: int | None = None

    def open(self) -> DataDir:
        """Create, check, tighten and lock the directory; StartupError if it cannot serve."""
        self._refuse_virtual()
        self._create()
        self._lock()
        try:
            self._tighten()
            self._check_database()
        except BaseException:
            self.close()
            raise
        return self

    def mark_initialised(self, database_id: int | None) -> None:
        """After the database opened: from now on, losing it is an error, and so is
        finding another database in its place (the marker names the one it expects)."""
        marker = self.path / MARKER_NAME
        line = f"database {database_id}\n" if database_id is not None else ""
        try:
            text = marker.read_text() if marker.exists() else ""
            expected = next(
                (w.split()[1] for w in text.splitlines() if w.startswith("database ")), None
            )
            if expected is not None and line and line.split()[1] != expected:
                raise StartupError(
                    f"the database {self.database} is not the one this data directory was"
                    f" created with (it is database {database_id}; the directory expects"
                    f" {expected}); put the right file back, or use another --data-dir"
                )
            if not text or (expected is None and line):
                _write_private(marker, "a Mailslot server's data directory\n" + line)
                _sync_directory(self.path)
        except OSError as error:
            raise StartupError(f"cannot write {marker}: {_reason(error)}") from None

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    # -- the steps ---------------------------------------------------------

    def _refuse_virtual(self) -> None:
        resolved = self.path.resolve()
        for root in VIRTUAL_FILE_SYSTEMS:
            if resolved.is_relative_to(root):
                raise StartupError(
                    f"the data directory {self.path} is inside {root}, which cannot hold"
                    " data; choose a directory on a disk"
                )

    def _create(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise StartupError(f"the data directory {self.path} is a file, not a directory")
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise StartupError(
                f"cannot create the data directory {self.path}: {_reason(error)}"
            ) from None

    def _lock(self) -> None:
        lock_path = self.path / LOCK_NAME
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise StartupError(self._unwritable(error)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StartupError(
                f"another Mailslot server (pid {holder}) is using the data directory"
                f" {self.path}; stop it first, or give this one another --data-dir"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as error:
            os.close(fd)
            raise StartupError(self._unwritable(error)) from None
        self._lock_fd = fd

    def _unwritable(self, error: OSError) -> str:
        if error.errno == errno.EROFS:
            return f"the data directory {self.path} is on a read-only file system"
        if error.errno in (errno.EACCES, errno.EPERM):
            return f"the data directory {self.path} is not writable by this user"
        return f"cannot write in the data directory {self.path}: {_reason(error)}"

    def _tighten(self) -> None:
        """Directory 0700, files 0600: they hold message texts and password hashes."""
        try:
            _tighten(self.path, 0o700)
            for entry in self.path.iterdir():
                if entry.is_file() and not entry.is_symlink():
                    _tighten(entry, 0o600)
        except OSError as error:
            raise StartupError(
                f"cannot make the data directory {self.path} private: {_reason(error)}"
            ) from None

    def _check_database(self) -> None:
        if not (self.path / MARKER_NAME).exists():
            return  # new, or from before the marker: the database (if any) is adopted
        name = self.database.name
        try:
            size = self.database.stat().st_size
        except FileNotFoundError:
            lost = "is missing"
        except OSError as error:
            raise StartupError(
                f"cannot read the database {self.database}: {_reason(error)}"
            ) from None
        else:
            if size > 0:
                return
            lost = "is empty (0 bytes)"
        raise StartupError(
            f"the data directory {self.path} holds Mailslot data, but its database {name}"
            f" {lost}; restore it from a backup, or move the directory aside to start afresh"
        )


def _reason(error: OSError) -> str:
    return _REASONS.get(error.errno or 0) or error.strerror or str(error)


def _tighten(path: Path, private: int) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & ~private:
        path.chmod(mode & private)
        log.warning("%s was open to other users (mode %04o); now %04o", path, mode, mode & private)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
