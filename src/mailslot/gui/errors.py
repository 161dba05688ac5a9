"""Turn client-library exceptions into sentences for the window."""

from __future__ import annotations

from mailslot.client import MailslotError


def login_sentence(exc: BaseException, user: str, where: str) -> tuple[str, str]:
    """(sentence, field to focus) for a failed connect or login."""
    code = getattr(exc, "code", "")
    if code == "username_in_use":
        return (
            f"The name “{user}” is in use by someone connected right now. "
            "Please choose another name.",
            "user",
        )
    if code == "wrong_password":
        return f"Wrong password for “{user}”. Please try again.", "password"
    if code == "password_required":
        return "This server protects every name with a password. Please enter yours.", "password"
    if code == "invalid_username":
        return (
            f"“{user}” cannot be used as a name: use 1–32 letters, digits, “.”, “_” or “-”.",
            "user",
        )
    if code == "rate_limited":
        wait = getattr(exc, "retry_after", 60.0)
        return (
            f"Too many attempts for “{user}”. Please wait {int(wait + 0.999)} seconds "
            "and try again.",
            "password",
        )
    if code == "server_busy":
        return f"The server at {where} is full right now. Please retry in a moment.", "server"
    if code in {"unreachable", "connection_lost"} or isinstance(exc, OSError):
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
    code = getattr(exc, "code", "")
    if code == "unknown_recipient":
        names = list(getattr(exc, "names", []))
        listed = ", ".join(f"“{n}”" for n in names) or "a recipient"
        return (
            f"the server does not know {listed}. Pick names from the list (it has been refreshed)."
        )
    if code == "connection_lost":
        return "the connection was lost. Your text is kept; send again once reconnected."
    if code == "rate_limited":
        return "you are sending too fast. Please wait a moment and send again."
    if isinstance(exc, MailslotError):
        return _sentence(str(exc))
    return f"something went wrong ({exc})."


def _sentence(text: str) -> str:
    text = text.strip() or "the server refused the request"
    return text if text.endswith((".", "!", "?")) else text + "."
