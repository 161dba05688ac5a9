"""Turn client-library exceptions into sentences for the window."""

from __future__ import annotations

from mailslot.client import (
    ConfusableUsername,
    ConnectError,
    ConnectionLost,
    InvalidUsername,
    MailslotError,
    PasswordRequired,
    RateLimited,
    ServerBusy,
    UnknownRecipient,
    UsernameInUse,
    WrongPassword,
)

LOGIN_REFUSALS = (WrongPassword, InvalidUsername, ConfusableUsername, PasswordRequired)
"""Refusals that another attempt with the same name and password cannot overcome."""


def login_sentence(exc: BaseException, user: str, where: str) -> tuple[str, str]:
    """(sentence, field to focus) for a failed connect or login."""
    if isinstance(exc, UsernameInUse):
        return (
            f"The name “{user}” is in use by someone connected right now. "
            "Please choose another name.",
            "user",
        )
    if isinstance(exc, WrongPassword):
        return f"Wrong password for “{user}”. Please try again.", "password"
    if isinstance(exc, PasswordRequired):
        return "This server protects every name with a password. Please enter yours.", "password"
    if isinstance(exc, InvalidUsername | ConfusableUsername):
        return _sentence(str(exc)[:1].upper() + str(exc)[1:]), "user"
    if isinstance(exc, RateLimited):
        return (
            f"Too many attempts for “{user}”. Please wait {int(exc.retry_after + 0.999)} seconds "
            "and try again.",
            "password",
        )
    if isinstance(exc, ServerBusy):
        return f"The server at {where} is full right now. Please retry in a moment.", "server"
    if isinstance(exc, ConnectError | ConnectionLost | OSError):
        detail = str(exc)
        return (
            f"{detail[0].upper() + detail[1:] if detail else 'Cannot reach ' + where}. "
            "Check the address and that the server is running, then retry.",
            "server",
        )
    if isinstance(exc, MailslotError):
        return _sentence(str(exc)), "user"
    return f"Something went wrong: {exc}.", "server"


def send_sentence(exc: BaseException) -> str:
    if isinstance(exc, UnknownRecipient):
        listed = ", ".join(f"“{n}”" for n in exc.names) or "a recipient"
        return (
            f"the server does not know {listed}. Pick names from the list (it has been refreshed)."
        )
    if isinstance(exc, ConnectionLost):
        return "the connection was lost. Your text is kept; send again once reconnected."
    if isinstance(exc, RateLimited):
        return "you are sending too fast. Please wait a moment and send again."
    if isinstance(exc, MailslotError):
        return _sentence(str(exc))
    return f"something went wrong ({exc})."


def _sentence(text: str) -> str:
    text = text.strip() or "the server refused the request"
    return text if text.endswith((".", "!", "?")) else text + "."
