"""Who a send goes to (S7, S8, S20): names checked against the log, 1-to-all resolved."""

from __future__ import annotations

from mailslot.protocol import ErrorCode, InvalidName, Send, name_key
from mailslot.server.directory import Directory, UserState
from mailslot.server.refusal import Refusal


def recipients(directory: Directory, me: UserState, request: Send, limit: int) -> list[UserState]:
    """The users a send reaches, each once; Refusal when any name is unknown or the
    request names too few or too many."""
    if request.mode == "all":
        if request.to:
            raise Refusal(ErrorCode.MALFORMED, "mode 'all' sends to everyone: leave out 'to'")
        everyone = [state for state in directory.by_key.values() if state is not me]
        if not everyone:
            raise Refusal(ErrorCode.NO_RECIPIENTS, "nobody else has used this server yet")
        return everyone
    names = request.to
    if not names:
        raise Refusal(ErrorCode.NO_RECIPIENTS, "name at least one recipient")
    if request.mode == "one" and len(names) > 1:
        raise Refusal(ErrorCode.TOO_MANY_RECIPIENTS, "mode 'one' takes exactly one recipient")
    if len(names) > limit:
        raise Refusal(
            ErrorCode.TOO_MANY_RECIPIENTS,
            f"{len(names)} recipients; the limit is {limit}",
            max=limit,
        )
    if len(names) == 1:  # the common case, without the bookkeeping below
        state = _find(directory, names[0])
        if state is None:
            raise _unknown(names)
        return [state]
    found: dict[str, UserState] = {}
    unknown: list[str] = []
    for name in names:
        state = _find(directory, name)
        if state is None:
            unknown.append(name)
        else:
            found[state.record.key] = state
    if unknown:
        raise _unknown(unknown)
    return list(found.values())


def _find(directory: Directory, name: str) -> UserState | None:
    try:
        return directory.by_key.get(name_key(name))
    except InvalidName:
        return None


def _unknown(names: list[str]) -> Refusal:
    listed = ", ".join(repr(name) for name in names)
    noun = "user" if len(names) == 1 else "users"
    return Refusal(ErrorCode.UNKNOWN_RECIPIENT, f"unknown {noun} {listed}", names=names)
