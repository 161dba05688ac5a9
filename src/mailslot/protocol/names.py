"""Username rules (B9): NFKC for display, NFKC + casefold for identity, and no look-alikes.

A new name must be made of characters that Unicode recommends for identifiers (UTS #39
Identifier_Status=Allowed), with no invisible ones, in one script or in one of the mixes that
UTS #39 calls "highly restrictive". `confusable_keys` gives the UTS #39 skeletons by which a
new name is compared with the names already taken. The Unicode tables behind these live in
unicode/uts39.json.gz (see unicode/README.md) and are read on first use, not at import.
"""

import bisect
import functools
import gzip
import json
import string
import unicodedata
from dataclasses import dataclass
from importlib import resources

MAX_NAME_LENGTH = 32
# NFKC composes at most three code points into one; anything longer is padding, and refusing it
# before NFKC keeps the caches below small however long the names a client sends.
_MAX_RAW_LENGTH = 4 * MAX_NAME_LENGTH
_PUNCTUATION_ALLOWED = frozenset("._-")
_ASCII_ALLOWED = frozenset(string.ascii_letters + string.digits) | _PUNCTUATION_ALLOWED
_HINT = "use letters, digits, '.', '_', '-'"
_ANY_SCRIPT = frozenset({"Zyyy", "Zinh"})  # Common and Inherited go with every script
# UTS #39 §5.1: Han is also written as part of Japanese, Chinese with Bopomofo, and Korean.
_AUGMENTED = {
    "Hani": frozenset({"Hanb", "Jpan", "Kore"}),
    "Hira": frozenset({"Jpan"}),
    "Kana": frozenset({"Jpan"}),
    "Bopo": frozenset({"Hanb"}),
    "Hang": frozenset({"Kore"}),
}
# UTS #39 §5.2, "Highly Restrictive": besides one script, these mixes are ordinary writing.
_HIGHLY_RESTRICTIVE_MIXES = (
    frozenset({"Latn", "Hani", "Hira", "Kana"}),
    frozenset({"Latn", "Hani", "Bopo"}),
    frozenset({"Latn", "Hani", "Hang"}),
)


class InvalidName(ValueError):
    """The name cannot be a Mailslot username; the message says why."""


@dataclass(frozen=True)
class _Ranges:
    """Sorted, disjoint code point ranges, each with a set of names (scripts, or none)."""

    starts: list[int]
    ends: list[int]
    values: list[frozenset[str]]

    @classmethod
    def of(cls, rows: list[list[int]], values: list[frozenset[str]] | None = None) -> "_Ranges":
        return cls(
            [row[0] for row in rows], [row[1] for row in rows], values or [frozenset()] * len(rows)
        )

    def get(self, char: str) -> frozenset[str] | None:
        code = ord(char)
        at = bisect.bisect_right(self.starts, code) - 1
        return self.values[at] if at >= 0 and code <= self.ends[at] else None

    def __contains__(self, char: str) -> bool:
        return self.get(char) is not None


@dataclass(frozen=True)
class _Tables:
    skeleton_map: dict[int, str | None]  # confusable prototypes; invisible characters dropped
    allowed: _Ranges
    default_ignorable: _Ranges
    scripts: _Ranges
    script_names: dict[str, str]


@functools.cache
def _tables() -> _Tables:
    packed = resources.files("mailslot.protocol").joinpath("unicode", "uts39.json.gz")
    data = json.loads(gzip.decompress(packed.read_bytes()))
    invisible = data["default_ignorable"]
    skeleton_map: dict[int, str | None] = {
        code: None for start, end in invisible for code in range(start, end + 1)
    }
    skeleton_map.update({ord(char): prototype for char, prototype in data["prototypes"].items()})
    scripts = data["script_extensions"]
    return _Tables(
        skeleton_map=skeleton_map,
        allowed=_Ranges.of(data["allowed"]),
        default_ignorable=_Ranges.of(invisible),
        scripts=_Ranges.of(scripts, [frozenset(row[2].split()) for row in scripts]),
        script_names=data["script_names"],
    )


def _normalised(raw: str) -> str:
    """NFKC without surrounding white space, checked for length: today's first rules."""
    if len(raw) > _MAX_RAW_LENGTH:
        raise InvalidName(f"a username has at most {MAX_NAME_LENGTH} characters")
    name = unicodedata.normalize("NFKC", raw).strip()
    if not name:
        raise InvalidName("a username cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"a username has at most {MAX_NAME_LENGTH} characters")
    return name


def _not_allowed(char: str) -> str:
    return f"{char!r} is not allowed in a username ({_HINT})"


def _character_problem(char: str) -> str | None:
    """Why a character of an NFKC name cannot be in any username (rules before UTS #39)."""
    return None if char.isalnum() or char in _PUNCTUATION_ALLOWED else _not_allowed(char)


def _ascii_problem(name: str) -> str | None:
    """`_unicode_problem` for ASCII names, without the tables: ASCII letters and digits are
    Allowed Latin and ASCII has no invisible letters, so only today's character rule is left."""
    bad = next((char for char in name if char not in _ASCII_ALLOWED), None)
    return None if bad is None else _not_allowed(bad)


def _describe(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed character')}"


def _unicode_problem(name: str) -> str | None:
    """Why an NFKC name cannot be a new username under UTS #39, or None when it can."""
    tables = _tables()
    for char in name:
        if char in tables.default_ignorable:
            return f"a username cannot contain invisible characters ({_describe(char)})"
        problem = _character_problem(char)
        if problem is not None:
            return problem
        if char not in tables.allowed:
            return (
                f"{char!r} ({_describe(char)}) is not allowed in a username: Unicode does not"
                " recommend it for identifiers (it is rare, obsolete or technical)"
            )
    return _script_problem(name, tables) or _digits_problem(name)


def _script_problem(name: str, tables: _Tables) -> str | None:
    """UTS #39 §5.2 "Highly Restrictive": one script, or Latin with Chinese, Japanese or Korean."""
    per_char = [tables.scripts.get(char) or _ANY_SCRIPT for char in name]
    per_char = [scripts for scripts in per_char if not scripts & _ANY_SCRIPT]
    resolved: set[str] | None = None
    for scripts in per_char:
        augmented = scripts.union(*(_AUGMENTED.get(script, ()) for script in scripts))
        resolved = set(augmented) if resolved is None else resolved & augmented
    if resolved is None or resolved:
        return None
    if any(all(scripts & mix for scripts in per_char) for mix in _HIGHLY_RESTRICTIVE_MIXES):
        return None
    seen = dict.fromkeys(min(scripts) for scripts in per_char)
    listed = " and ".join(tables.script_names.get(script, script) for script in seen)
    return (
        f"a username cannot mix scripts ({listed}): use one alphabet, or Latin"
        " with Chinese, Japanese or Korean characters"
    )


def _digits_problem(name: str) -> str | None:
    """UTS #39 §5.5: digits of two number systems ("8" and Bengali "৪") can spell look-alikes."""
    zeros = {ord(char) - unicodedata.decimal(char) for char in name if char.isdecimal()}
    if len(zeros) < 2:
        return None
    return "a username cannot mix digits of different number systems"


@functools.lru_cache(maxsize=65_536)
def display_name(raw: str) -> str:
    """The spelling kept for display: NFKC, surrounding white space removed.

    Raises InvalidName with a human sentence when the name is not acceptable as a new username:
    empty, longer than MAX_NAME_LENGTH, characters other than letters, digits, '.', '_', '-',
    invisible characters (fillers, joiners), characters that UTS #39 does not allow in
    identifiers, a mix of scripts beyond UTS #39's "highly restrictive" ones, or digits of
    two number systems.
    """
    name = _normalised(raw)
    problem = _ascii_problem(name) if name.isascii() else _unicode_problem(name)
    if problem is not None:
        raise InvalidName(problem)
    return name


def _basic_name(raw: str) -> str:
    """NFKC name under the rules before UTS #39, which every stored name meets."""
    name = _normalised(raw)
    for char in name:
        problem = _character_problem(char)
        if problem is not None:
            raise InvalidName(problem)
    return name


@functools.lru_cache(maxsize=65_536)
def name_key(raw: str) -> str:
    """The identity of a name: two names are one user when their keys are equal.

    Only the rules from before UTS #39 apply here, so that a name stored before them can still
    be found; `display_name` is the check for a new name.
    """
    return unicodedata.normalize("NFKC", _basic_name(raw).casefold())


def _skeleton(text: str) -> str:
    """UTS #39 §4 skeleton: NFD, invisible characters dropped, confusable prototypes, NFD."""
    mapped = unicodedata.normalize("NFD", text).translate(_tables().skeleton_map)
    return unicodedata.normalize("NFD", mapped)


@functools.lru_cache(maxsize=65_536)
def confusable_keys(name: str) -> tuple[str, ...]:
    """The keys by which names that look alike are found.

    Two different users A and B are confusable when
    set(confusable_keys(A)) & set(confusable_keys(B)). Names of one user (equal `name_key`)
    share keys too; the caller tells those apart by `name_key`.

    The keys are the UTS #39 skeletons of the name as given and of the ways one user's name is
    written: its key, lower case, upper case and capitalised. Identity ignores case, so looks
    must be compared across cases: "aIice" (capital I) looks like "alice" but its key is
    "aiice", and "AIice" looks like "Alice", which is alice. A skeleton of the key alone would
    miss both. Raises InvalidName for a name that breaks the rules from before UTS #39.
    """
    shown = _basic_name(name)
    spellings = (shown, name_key(shown), shown.lower(), shown.upper(), shown.capitalize())
    return tuple(dict.fromkeys(_skeleton(spelling) for spelling in spellings))
