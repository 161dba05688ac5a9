"""Who may use a name (B2): a password set on first use, checked on every later login.

Wrong passwords are counted per source address and name, and per source address over all
names (B13): a guesser is slowed down, while the owner of a name, coming from another
address, still gets in. The counts live in the hub, so that in a cluster a guesser gains
nothing by spreading over nodes.
"""

from __future__ import annotations

import asyncio

from mailslot.protocol import ErrorCode, now_micros
from mailslot.server.directory import UserState
from mailslot.server.hub.base import Hub
from mailslot.server.passwords import hash_password, verify_password
from mailslot.server.refusal import Refusal, rate_limited
from mailslot.server.throttle import LoginThrottles
from mailslot.store import NameTaken, Store


class Accounts:
    def __init__(self, auth: str, store: Store, hub: Hub, throttles: LoginThrottles) -> None:
        self.auth = auth
        self.store = store
        self.hub = hub
        self.throttles = throttles

    async def authenticate(
        self, key: str, name: str, password: str | None, source: str, *, again: bool = False
    ) -> tuple[UserState, bool]:
        """The user to log in as and whether it is new; Refusal when the password does not do.

        A name that has a password needs it in either auth mode; `--auth none` only lets in
        names without one. A name first used without a password (an open-mode server, later
        run with passwords) takes the first password it is given.
        """
        state = await self.hub.find(key)
        protected = state is not None and state.record.password_hash is not None
        password_hash: str | None = None
        if self.auth == "password" or protected:
            if not password:
                raise Refusal(
                    ErrorCode.PASSWORD_REQUIRED,
                    f"{name!r} is a new name: choose its password"
                    if state is None
                    else f"{state.name!r} is protected by a password",
                    new=state is None,
                )
            if state is not None and state.record.password_hash is not None:
                await self._check_password(state, password, source)
            else:
                password_hash = await _hash(password)
        if state is None:
            self._admit_new_name(name, key, source)
            directory = self.hub.directory
            directory.reserve(name, key)
            try:
                record = await self.store.create_user(key, name, password_hash, now_micros())
            except NameTaken:  # created a moment ago on another node: log in to it instead
                if again:
                    raise
                return await self.authenticate(key, name, password, source, again=True)
            finally:
                directory.release(name, key)
            created = directory.add(record)
            self.hub.user_created(created, source)
            return created, True
        if password_hash is not None:
            await self.store.set_password(state.record.id, password_hash)
            self.hub.password_set(state, password_hash)
        return state, False

    async def change_password(self, state: UserState, old: str, new: str, source: str) -> None:
        if not new:
            raise Refusal(ErrorCode.PASSWORD_REQUIRED, "the new password cannot be empty")
        if state.record.password_hash is not None:
            self.throttle_check(state.record.key, state.name, source)
            await self._check_password(state, old, source)
        password_hash = await _hash(new)
        await self.store.set_password(state.record.id, password_hash)
        self.hub.password_set(state, password_hash)

    def throttle_check(self, key: str, name: str, source: str) -> None:
        """Refusal while this source has guessed wrong too often, for this name or overall."""
        retry = self.throttles.retry_after(source, key)
        if retry:
            raise rate_limited(f"too many wrong passwords for {name!r}", retry, digits=0)

    async def _check_password(self, state: UserState, password: str, source: str) -> None:
        stored = state.record.password_hash
        assert stored is not None
        matches = await asyncio.get_running_loop().run_in_executor(
            None, verify_password, password, stored
        )
        if not matches:
            self.hub.login_failed(source, state.record.key)
            raise Refusal(ErrorCode.WRONG_PASSWORD, f"wrong password for {state.name!r}")
        self.throttles.succeeded(source, state.record.key)

    def _admit_new_name(self, name: str, key: str, source: str) -> None:
        other = self.hub.directory.look_alike(name, key)
        if other is not None:
            raise Refusal(
                ErrorCode.CONFUSABLE_USERNAME,
                f"{name!r} looks too much like the existing user {other!r}; choose another name",
                like=other,
            )
        retry = self.throttles.new_users.take(source)
        if retry:
            raise rate_limited("too many new names from your address", retry, digits=0)


async def _hash(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
