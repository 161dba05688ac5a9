"""Who may use a name (B2): a password set on first use, checked on every later login.

Wrong passwords are counted per source address and name, and per source address over all
names (B13): a guesser is slowed down, while the owner of a name, coming from another
address, still gets in.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mailslot.protocol import ErrorCode, now_micros
from mailslot.server.directory import UserState
from mailslot.server.passwords import hash_password, verify_password
from mailslot.server.refusal import Refusal, rate_limited

if TYPE_CHECKING:
    from mailslot.server.core import MailslotServer


async def authenticate(
    server: MailslotServer, key: str, name: str, password: str | None, source: str
) -> tuple[UserState, bool]:
    """The user to log in as and whether it is new; Refusal when the password does not do.

    A name that has a password needs it in either auth mode; `--auth none` only lets in
    names without one. A name first used without a password (an open-mode server, later
    run with passwords) takes the first password it is given.
    """
    state = server.directory.by_key.get(key)
    protected = state is not None and state.record.password_hash is not None
    password_hash: str | None = None
    if server.config.auth == "password" or protected:
        if not password:
            raise Refusal(
                ErrorCode.PASSWORD_REQUIRED,
                f"{name!r} is a new name: choose its password"
                if state is None
                else f"{state.name!r} is protected by a password",
                new=state is None,
            )
        if state is not None and state.record.password_hash is not None:
            await _check_password(server, state, password, source)
        else:
            password_hash = await _hash(password)
    if state is None:
        _admit_new_name(server, name, key, source)
        server.directory.reserve(name, key)
        try:
            record = await server.store.create_user(key, name, password_hash, now_micros())
        finally:
            server.directory.release(name, key)
        return server.user_created(record), True
    if password_hash is not None:
        await server.store.set_password(state.record.id, password_hash)
        server.password_set(state, password_hash)
    return state, False


async def change_password(
    server: MailslotServer, state: UserState, old: str, new: str, source: str
) -> None:
    if not new:
        raise Refusal(ErrorCode.PASSWORD_REQUIRED, "the new password cannot be empty")
    if state.record.password_hash is not None:
        throttle_check(server, state.record.key, state.name, source)
        await _check_password(server, state, old, source)
    password_hash = await _hash(new)
    await server.store.set_password(state.record.id, password_hash)
    server.password_set(state, password_hash)


def throttle_check(server: MailslotServer, key: str, name: str, source: str) -> None:
    """Refusal while this source has guessed wrong too often, for this name or overall."""
    retry = max(
        server.login_failures.retry_after((source, key)),
        server.source_failures.retry_after(source),
    )
    if retry:
        raise rate_limited(f"too many wrong passwords for {name!r}", retry, digits=0)


async def _check_password(
    server: MailslotServer, state: UserState, password: str, source: str
) -> None:
    stored = state.record.password_hash
    assert stored is not None
    matches = await asyncio.get_running_loop().run_in_executor(
        None, verify_password, password, stored
    )
    if not matches:
        server.login_failures.failed((source, state.record.key))
        server.source_failures.failed(source)
        raise Refusal(ErrorCode.WRONG_PASSWORD, f"wrong password for {state.name!r}")
    server.login_failures.succeeded((source, state.record.key))


async def _hash(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(None, hash_password, password)


def _admit_new_name(server: MailslotServer, name: str, key: str, source: str) -> None:
    other = server.directory.look_alike(name, key)
    if other is not None:
        raise Refusal(
            ErrorCode.CONFUSABLE_USERNAME,
            f"{name!r} looks too much like the existing user {other!r}; choose another name",
            like=other,
        )
    retry = server.new_user_buckets.take(source)
    if retry:
        raise rate_limited("too many new names from your address", retry, digits=0)
