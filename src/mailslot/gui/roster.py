"""The client's view of the server's username log: names, who is online, name matching."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

NAME_MAX = 32


def name_key(name: str) -> str:
    """The identity of a name as the server compares it (NFKC, trimmed, case-folded)."""
    return unicodedata.normalize("NFKC", name).strip().casefold()


def name_problem(name: str) -> str | None:
    """A sentence saying why ``name`` cannot be a username, or None if it can."""
    norm = unicodedata.normalize("NFKC", name).strip()
    if not norm:
        return "Please enter a username."
    if len(norm) > NAME_MAX:
        return f"A username has at most {NAME_MAX} characters; this one has {len(norm)}."
    bad = sorted({ch for ch in norm if not (ch.isalnum() or ch in "._-")})
    if bad:
        shown = " ".join("space" if ch == " " else ch for ch in bad[:5])
        return f"A username may contain letters, digits, “.”, “_” and “-” only (not: {shown})."
    return None


@dataclass
class Person:
    name: str
    online: bool


class Roster:
    """Every username the server has seen, kept sorted case-insensitively, with presence."""

    def __init__(self) -> None:
        self._people: dict[str, Person] = {}
        self._order: list[str] | None = None
        self._listeners: list[Callable[[], None]] = []
        self.version = 0

    def on_change(self, fn: Callable[[], None]) -> None:
        self._listeners.append(fn)

    def _changed(self) -> None:
        self._order = None
        self.version += 1
        for fn in self._listeners:
            fn()

    def replace(self, people: Iterable[tuple[str, bool]]) -> None:
        self._people = {name_key(n): Person(n, o) for n, o in people}
        self._changed()

    def set_online(self, name: str, online: bool) -> None:
        key = name_key(name)
        person = self._people.get(key)
        if person is None:
            self._people[key] = Person(name, online)
        elif person.online == online:
            return
        else:
            person.online = online
        self._changed()

    def add(self, name: str) -> None:
        key = name_key(name)
        if key not in self._people:
            self._people[key] = Person(name, False)
            self._changed()

    def people(self) -> list[Person]:
        if self._order is None:
            self._order = sorted(self._people, key=lambda k: (k, self._people[k].name))
        return [self._people[k] for k in self._order]

    def lookup(self, typed: str) -> Person | None:
        return self._people.get(name_key(typed))

    def completions(self, prefix: str, exclude: str | None = None) -> list[str]:
        key = name_key(prefix)
        skip = name_key(exclude) if exclude else None
        return [
            p.name
            for k, p in ((name_key(p.name), p) for p in self.people())
            if k.startswith(key) and k != skip
        ]

    def __len__(self) -> int:
        return len(self._people)

    @property
    def online_count(self) -> int:
        return sum(1 for p in self._people.values() if p.online)
