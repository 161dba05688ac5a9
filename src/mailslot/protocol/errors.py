"""Typed error codes of the wire protocol."""

from enum import StrEnum


class ErrorCode(StrEnum):
    MALFORMED = "malformed"
    UNKNOWN_OP = "unknown_op"
    UNSUPPORTED_VERSION = "unsupported_version"
    NOT_LOGGED_IN = "not_logged_in"
    ALREADY_LOGGED_IN = "already_logged_in"
    INVALID_USERNAME = "invalid_username"
    CONFUSABLE_USERNAME = "confusable_username"
    USERNAME_IN_USE = "username_in_use"
    PASSWORD_REQUIRED = "password_required"
    WRONG_PASSWORD = "wrong_password"
    UNKNOWN_RECIPIENT = "unknown_recipient"
    NO_RECIPIENTS = "no_recipients"
    TOO_MANY_RECIPIENTS = "too_many_recipients"
    TEXT_TOO_LONG = "text_too_long"
    EMPTY_TEXT = "empty_text"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    SERVER_BUSY = "server_busy"
    STORAGE_FULL = "storage_full"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class CloseReason(StrEnum):
    SHUTDOWN = "shutdown"
    ACCOUNT_DELETED = "account_deleted"  # by the operator (mailslot admin delete-user)
    IDLE = "idle"
    LOGIN_TIMEOUT = "login_timeout"
    SLOW_CONSUMER = "slow_consumer"
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    UNAVAILABLE = "unavailable"  # the node lost its cluster database: log in again
