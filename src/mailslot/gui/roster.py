"""The client's view of the server's username log: names, who is online, name matching.

Names are compared by the protocol's own ``name_key``, so the client and the server
always agree on who is who (B9).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mailslot.protocol.names import InvalidName, display_name, name_key


def key_or_none(name: str) -> str | None:
    """``name_key(name)``, or None when ``name`` cannot be a username."""
    try:
        return name_key(name)
    except InvalidName:
        return None


def filter_key(text: str) -> str:
    """What a filter box's text matches name keys by, even when it is no name itself."""
    return key_or_none(text) or text.strip().casefold()


def name_problem(name: str) -> str | None:
    """A sentence saying why ``name`` cannot be a username, or None if it can."""
    try:
        display_name(name)
    except InvalidName as problem:
        text = str(problem)
        return text[:1].upper() + text[1:] + "."
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

    def _sorted_keys(self) -> list[str]:
        if self._order is None:
            self._order = sorted(self._people, key=lambda k: (k, self._people[k].name))
        return self._order

    def people(self) -> list[Person]:
        return [self._people[k] for k in self._sorted_keys()]

    def lookup(self, typed: str) -> Person | None:
        key = key_or_none(typed)
        return None if key is None else self._people.get(key)

    def completions(self, prefix: str, exclude: str | None = None) -> list[str]:
        key = key_or_none(prefix)
        if key is None:
            return []
        skip = key_or_none(exclude) if exclude else None
        return [
            self._people[k].name for k in self._sorted_keys() if k.startswith(key) and k != skip
        ]

    def __len__(self) -> int:
        return len(self._people)

    @property
    def online_count(self) -> int:
        return sum(1 for p in self._people.values() if p.online)
