"""Who may use a name (B2): a password set on first use, checked on every later login."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mailslot.protocol import ErrorCode, now_micros
from mailslot.server.directory import UserState
from mailslot.server.passwords import hash_password, verify_password
from mailslot.server.refusal import Refusal

if TYPE_CHECKING:
    from mailslot.server.core import MailslotServer


async def authenticate(
    server: MailslotServer, key: str, name: str, password: str | None
) -> tuple[UserState, bool]:
    """The user to log in as and whether it is new; Refusal when the password does not do.

    A name first used without a password (an open-mode server, later run with
    passwords) takes the first password it is given.
    """
    state = server.directory.by_key.get(key)
    password_hash: str | None = None
    if server.config.auth == "password":
        if not password:
            raise Refusal(ErrorCode.PASSWORD_REQUIRED, "this server requires a password")
        loop = asyncio.get_running_loop()
        if state is not None and state.record.password_hash is not None:
            matches = await loop.run_in_executor(
                None, verify_password, password, state.record.password_hash
            )
            if not matches:
                server.login_throttle.failed(key)
                raise Refusal(ErrorCode.WRONG_PASSWORD, f"wrong password for {state.name!r}")
            server.login_throttle.succeeded(key)
        else:
            password_hash = await loop.run_in_executor(None, hash_password, password)
    if state is None:
        record = await server.store.create_user(key, name, password_hash, now_micros())
        return server.user_created(record), True
    if password_hash is not None:
        await server.store.set_password(state.record.id, password_hash)
        server.password_set(state, password_hash)
    return state, False
