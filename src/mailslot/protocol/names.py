"""Username normalisation (B9): NFKC for display, NFKC + casefold for identity."""

import functools
import unicodedata

MAX_NAME_LENGTH = 32
_PUNCTUATION_ALLOWED = frozenset("._-")


class InvalidName(ValueError):
    """The name cannot be a Mailslot username; the message says why."""


def display_name(raw: str) -> str:
    """The spelling kept for display: NFKC, surrounding white space removed.

    Raises InvalidName with a human sentence when the name is not acceptable.
    """
    name = unicodedata.normalize("NFKC", raw).strip()
    if not name:
        raise InvalidName("a username cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"a username has at most {MAX_NAME_LENGTH} characters")
    for char in name:
        if not (char.isalnum() or char in _PUNCTUATION_ALLOWED):
            raise InvalidName(
                f"{char!r} is not allowed in a username (use letters, digits, '.', '_', '-')"
            )
    return name


@functools.lru_cache(maxsize=65_536)
def name_key(raw: str) -> str:
    """The identity of a name: two names are one user when their keys are equal."""
    return unicodedata.normalize("NFKC", display_name(raw).casefold())
