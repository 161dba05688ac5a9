"""The control socket: `mailslot admin` talks to the running server through a Unix
socket in the data dir, mode 0600, so whoever can reach the data dir may
administer the server (as PostgreSQL's peer authentication), and nobody over the
network.

One JSON object per line each way: {"op": "users"} → {"ok": true, ...}, or
{"ok": false, "message": "one sentence"}. Every change is logged with what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailslot.protocol import CloseReason, InvalidName, name_key
from mailslot.server.config import StartupError
from mailslot.server.directory import UserState
from mailslot.server.passwords import hash_password

if TYPE_CHECKING:
    from mailslot.server.core import MailslotServer

log = logging.getLogger("mailslot.admin")

MAX_REQUEST = 64 * 1024


class AdminError(Exception):
    """An admin request that cannot be done; str() is the sentence for the operator."""


class ControlSocket:
    def __init__(self, server: MailslotServer) -> None:
        self.server = server
        self.path = server.config.control_socket
        self._listener: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        _clear_stale(self.path)
        # Created 0600 from the start: no moment at which others could connect.
        old_umask = os.umask(0o177)
        try:
            self._listener = await asyncio.start_unix_server(
                self._serve, self.path, limit=MAX_REQUEST
            )
        except OSError as error:
            raise StartupError(
                f"cannot create the admin socket {self.path}: {error.strerror or error}"
            ) from None
        finally:
            os.umask(old_umask)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(json.dumps(await self.handle(line)).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError):
            pass  # the admin command went away, or sent a line too long to be ours
        finally:
            writer.close()

    async def handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            operation = OPERATIONS.get(request.get("op")) if isinstance(request, dict) else None
            if operation is None:
                raise AdminError("unknown admin request")
            return {"ok": True, **await operation(self.server, request)}
        except AdminError as error:
            return {"ok": False, "message": str(error)}
        except json.JSONDecodeError:
            return {"ok": False, "message": "the admin request is not JSON"}
        except Exception as error:
            log.exception("admin request failed")
            return {"ok": False, "message": f"the server failed on this request: {error}"}


def _clear_stale(path: Path) -> None:
    """Remove the socket a crashed server left behind; refuse if a server answers on it."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)
    else:
        raise StartupError(f"another Mailslot server is running with the data dir {path.parent}")
    finally:
        probe.close()


def _user(server: MailslotServer, request: dict[str, Any]) -> UserState:
    name = request.get("name")
    if not isinstance(name, str):
        raise AdminError("name a user")
    try:
        state = server.directory.by_key.get(name_key(name))
    except InvalidName:
        state = None
    if state is None:
        raise AdminError(f"there is no user {name!r}")
    return state


def _last_seen(server: MailslotServer, state: UserState) -> str | None:
    """"now" while logged in (in cluster mode with the node), else when it left."""
    if not state.online:
        return _time(state.last_seen)
    if server.config.database is None:
        return "now"
    return f"now, on {server.node_name if state.session is not None else state.node}"


def _time(at: datetime | None) -> str | None:
    """ISO 8601 in UTC, to the second: 2026-11-26T02:24:16Z."""
    if at is None:
        return None
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def users(server: MailslotServer, request: dict[str, Any]) -> dict[str, Any]:
    rows = [
        {
            "name": state.name,
            "created": _time(datetime.fromtimestamp(state.record.created_at / 1e6, UTC)),
            "last_seen": _last_seen(server, state),
            "waiting": state.waiting,
            "protected": state.record.password_hash is not None,
        }
        for state in server.directory.sorted()
    ]
    return {"users": rows}


async def stats(server: MailslotServer, request: dict[str, Any]) -> dict[str, Any]:
    states = server.directory.by_key.values()
    database = server.config.database_file
    size = sum(
        path.stat().st_size
        for path in (database, database.with_name(database.name + "-wal"))
        if path.exists()
    )
    return {
        "address": server.address,
        "started": _time(server.started_at),
        "users": len(server.directory),
        "online": sum(1 for state in states if state.online),
        "connections": len(server.sessions),
        "waiting": sum(state.waiting for state in states),
        "delivered": server.delivered,
        "database_bytes": size,
    }


async def reset_password(server: MailslotServer, request: dict[str, Any]) -> dict[str, Any]:
    state = _user(server, request)
    password = request.get("password")
    if not isinstance(password, str) or not password:
        raise AdminError("the new password is empty")
    loop = asyncio.get_running_loop()
    password_hash = await loop.run_in_executor(None, hash_password, password)
    await server.store.set_password(state.record.id, password_hash)
    server.hub.password_set(state, password_hash)
    log.info("admin: reset the password of %r", state.name)
    return {"name": state.name}


async def delete_user(server: MailslotServer, request: dict[str, Any]) -> dict[str, Any]:
    state = _user(server, request)
    # Routing stops finding the name first, so no new mail is queued for it; a
    # session that is logged in as it is closed before its rows go.
    server.hub.user_deleted(state)
    signed_out = state.session is not None
    if state.session is not None:
        state.session.close(CloseReason.ACCOUNT_DELETED)
    waiting = await server.store.delete_user(state.record.id)
    log.info(
        "admin: deleted user %r with %d waiting messages%s",
        state.name,
        waiting,
        "; closed its session" if signed_out else "",
    )
    return {"name": state.name, "deleted_messages": waiting, "signed_out": signed_out}


async def purge(server: MailslotServer, request: dict[str, Any]) -> dict[str, Any]:
    state = _user(server, request)
    deleted = await server.store.purge(state.record.id)
    state.waiting = 0
    log.info("admin: purged the queue of %r: %d messages deleted", state.name, deleted)
    return {"name": state.name, "deleted_messages": deleted}


async def backup(server: MailslotServer, request: dict[str, Any]) -> dict[str, Any]:
    path = request.get("path")
    if not isinstance(path, str) or not Path(path).is_absolute():
        raise AdminError("give the backup file as an absolute path")
    target = Path(path)
    try:
        # Readable by its owner only: it holds password hashes and messages.
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise AdminError(f"{target} already exists; choose a new file name") from None
    except OSError as error:
        raise AdminError(f"cannot write the backup to {target}: {error.strerror}") from None
    try:
        await server.store.backup(target)
    except Exception as error:
        target.unlink(missing_ok=True)
        raise AdminError(f"cannot write the backup to {target}: {error}") from None
    size = target.stat().st_size
    log.info("admin: backup written to %s (%d bytes)", target, size)
    return {"path": str(target), "bytes": size}


Operation = Callable[["MailslotServer", dict[str, Any]], Awaitable[dict[str, Any]]]
OPERATIONS: dict[Any, Operation] = {
    "users": users,
    "stats": stats,
    "reset_password": reset_password,
    "delete_user": delete_user,
    "purge": purge,
    "backup": backup,
}
