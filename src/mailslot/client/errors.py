"""Typed exceptions mirroring the protocol's error codes; str() is a human sentence."""

from __future__ import annotations

from typing import Any

from mailslot.protocol import ErrorCode, ErrorReply


class MailslotError(Exception):
    code: str = "error"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class ConnectError(MailslotError):
    code = "unreachable"


class ConnectionLost(MailslotError):
    code = "connection_lost"


def _error(name: str, code: ErrorCode) -> type[MailslotError]:
    return type(name, (MailslotError,), {"code": str(code), "__module__": __name__})


Malformed = _error("Malformed", ErrorCode.MALFORMED)
UnknownOp = _error("UnknownOp", ErrorCode.UNKNOWN_OP)
UnsupportedVersion = _error("UnsupportedVersion", ErrorCode.UNSUPPORTED_VERSION)
NotLoggedIn = _error("NotLoggedIn", ErrorCode.NOT_LOGGED_IN)
AlreadyLoggedIn = _error("AlreadyLoggedIn", ErrorCode.ALREADY_LOGGED_IN)
InvalidUsername = _error("InvalidUsername", ErrorCode.INVALID_USERNAME)
ConfusableUsername = _error("ConfusableUsername", ErrorCode.CONFUSABLE_USERNAME)
UsernameInUse = _error("UsernameInUse", ErrorCode.USERNAME_IN_USE)
PasswordRequired = _error("PasswordRequired", ErrorCode.PASSWORD_REQUIRED)
WrongPassword = _error("WrongPassword", ErrorCode.WRONG_PASSWORD)
NoRecipients = _error("NoRecipients", ErrorCode.NO_RECIPIENTS)
TooManyRecipients = _error("TooManyRecipients", ErrorCode.TOO_MANY_RECIPIENTS)
TextTooLong = _error("TextTooLong", ErrorCode.TEXT_TOO_LONG)
EmptyText = _error("EmptyText", ErrorCode.EMPTY_TEXT)
TooLarge = _error("TooLarge", ErrorCode.TOO_LARGE)
ServerBusy = _error("ServerBusy", ErrorCode.SERVER_BUSY)
StorageFull = _error("StorageFull", ErrorCode.STORAGE_FULL)
Unavailable = _error("Unavailable", ErrorCode.UNAVAILABLE)
InternalError = _error("InternalError", ErrorCode.INTERNAL)


class UnknownRecipient(MailslotError):
    code = str(ErrorCode.UNKNOWN_RECIPIENT)

    @property
    def names(self) -> list[str]:
        return list(self.extra.get("names", []))


class RateLimited(MailslotError):
    code = str(ErrorCode.RATE_LIMITED)

    @property
    def retry_after(self) -> float:
        return float(self.extra.get("retry_after", 1.0))


_BY_CODE: dict[str, type[MailslotError]] = {
    cls.code: cls
    for cls in (
        Malformed,
        UnknownOp,
        UnsupportedVersion,
        NotLoggedIn,
        AlreadyLoggedIn,
        InvalidUsername,
        ConfusableUsername,
        UsernameInUse,
        PasswordRequired,
        WrongPassword,
        NoRecipients,
        TooManyRecipients,
        TextTooLong,
        EmptyText,
        TooLarge,
        ServerBusy,
        StorageFull,
        Unavailable,
        InternalError,
        UnknownRecipient,
        RateLimited,
    )
}


def error_from_reply(reply: ErrorReply) -> MailslotError:
    """The exception for an error reply; codes this client does not know give MailslotError."""
    message = reply.message or reply.error.replace("_", " ")
    return _BY_CODE.get(reply.error, MailslotError)(message, **reply.extra)
