"""What sessions ask of the rest of the server about other users, and nothing more.

A hub knows every user (the directory), who is logged in where (claims), who wants
presence events, and whom to tell about new mail. Sessions talk to it through this
interface only; the in-process hub serves one node, the PostgreSQL hub several nodes
on one database. A hub never imports a session: it sees them as `Listener`s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mailslot.server.directory import Directory, UserState


class Listener(Protocol):
    """A logged-in connection as the hub sees it: something to push frames to."""

    presence: bool  # wants online/offline/new_user events

    def push(self, frame: bytes) -> None: ...

    def close(self, reason: str | None = None) -> None: ...


class Hub(Protocol):
    directory: Directory
    delivered_total: int  # messages acknowledged by their recipients on this node

    async def start(self) -> None: ...

    def trouble(self) -> str | None:
        """Why this node cannot take logins right now, or None (for /readyz)."""
        ...

    async def stop(self) -> None: ...

    # -- names -------------------------------------------------------------------------

    async def find(self, key: str) -> UserState | None:
        """The user with this name key as the whole cluster knows it right now (its
        password hash included), or None."""
        ...

    async def catch_up(self) -> bool:
        """Learn the users created on other nodes since the last look; whether there
        were any. A 1-to-all calls it first, and a send to a name not known yet."""
        ...

    def user_created(self, state: UserState, source: str) -> None:
        """A name was just stored, from this client address."""
        ...

    def user_deleted(self, state: UserState) -> None: ...

    def password_set(self, state: UserState, password_hash: str) -> None: ...

    # -- claims and presence -------------------------------------------------------------

    def claimed(self, key: str) -> bool:
        """Whether this node has a login of `key`, done or under way."""
        ...

    def hold(self, key: str, listener: Listener) -> None:
        """Mark `key` as being logged in here, while its password is checked."""
        ...

    async def claim(self, state: UserState, listener: Listener) -> bool:
        """Make the login of `state` by `listener` the only one cluster-wide, and bring
        its waiting count up to date; False when another node has it. The key must be
        held (`hold`)."""
        ...

    def unhold(self, key: str, listener: Listener) -> None:
        """Drop a hold whose login did not go through."""
        ...

    def logged_in(self, state: UserState, listener: Listener, created: bool) -> None: ...

    def logged_out(self, state: UserState, listener: Listener) -> None: ...

    # -- mail ----------------------------------------------------------------------------

    def delivered(self, recipients: Sequence[UserState]) -> None:
        """Messages were committed to these queues (one entry per message)."""
        ...

    def acknowledged(self, state: UserState, count: int) -> None: ...

    # -- throttles shared by every node --------------------------------------------------

    def login_failed(self, source: str, key: str) -> None: ...
