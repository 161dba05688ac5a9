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
    Unavailable,
    UnknownRecipient,
    UsernameInUse,
    WrongPassword,
)

LOGIN_REFUSALS = (WrongPassword, InvalidUsername, ConfusableUsername, PasswordRequired)
"""Refusals that another attempt with the same name and password cannot overcome."""


class NoServer(Exception):
    """None of several servers would serve; ``failures`` pairs each address with its error."""

    def __init__(self, failures: list[tuple[str, BaseException]]) -> None:
        super().__init__("; ".join(f"{where}: {error}" for where, error in failures))
        self.failures = failures


def _brief(where: str, exc: BaseException) -> str:
    """Why one server of a list did not serve, without repeating its address."""
    if isinstance(exc, ServerBusy):
        return "full right now"
    if isinstance(exc, Unavailable):
        return "up, but cannot serve right now (its database is away)"
    if isinstance(exc, ConnectionLost):
        return "closed the connection"
    text = str(exc)
    for prefix in (f"cannot reach the server at {where}: ", f"the server at {where} ", f"{where} "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    # One line each in the login window: "nothing is listening there (connection refused)"
    # says the same twice.
    return "connection refused" if text.endswith("(connection refused)") else text


def login_sentence(exc: BaseException, user: str, where: str) -> tuple[str, str]:
    """(sentence, field to focus) for a failed connect or login."""
    if isinstance(exc, NoServer):
        lines = "\n".join(f"•  {where}: {_brief(where, error)}" for where, error in exc.failures)
        return (
            f"None of the {len(exc.failures)} servers answered.\n{lines}\n"
            "Check the addresses and that the servers are running, then retry.",
            "server",
        )
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
