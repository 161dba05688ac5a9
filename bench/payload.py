"""Message texts, send plans and delivery verification, shared by every system.

Every message is exactly 100 bytes of ASCII and carries a unique sequence number
and the index of the recipient it was addressed to, so lost, duplicated and
misrouted deliveries can be counted the same way for every system.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

TEXT_LEN = 100
BROADCAST = 999_999  # recipient index used in broadcast texts
_PAD = "x" * TEXT_LEN


def text_for(seq: int, dest: int) -> str:
    """A 100-character text embedding ``seq`` and ``dest``."""
    head = f"m{seq:09d}.{dest:06d}."
    return head + _PAD[: TEXT_LEN - len(head)]


def parse_text(text: str) -> tuple[int, int]:
    """Return (seq, dest) from a text made by :func:`text_for`; (-1, -1) if foreign."""
    if len(text) < 18 or text[0] != "m" or text[10] != ".":
        return -1, -1
    try:
        return int(text[1:10]), int(text[11:17])
    except ValueError:
        return -1, -1


def user_name(i: int) -> str:
    return f"u{i:05d}"


def make_plan(users: int, messages: int, seed: int = 1) -> list[int]:
    """plan[seq] = recipient index, uniformly random, reproducible."""
    rnd = random.Random(seed)
    return [rnd.randrange(users) for _ in range(messages)]


@dataclass
class Verdict:
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    misrouted: int = 0
    leftover: int = 0
    foreign: int = 0
    send_errors: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not (self.lost or self.duplicated or self.misrouted or self.leftover or self.foreign)
            and self.delivered == self.expected
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "expected": self.expected,
            "delivered": self.delivered,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "misrouted": self.misrouted,
            "leftover": self.leftover,
            "foreign": self.foreign,
            "send_errors": self.send_errors,
            "ok": self.ok,
            "notes": self.notes,
        }


def verify_one_to_one(
    plan: Sequence[int],
    acked: Iterable[int],
    received: Iterable[tuple[int, str]],
    leftover: int,
) -> Verdict:
    """``received`` holds (recipient index, text) for every delivery seen by the drain."""
    acked_set = set(acked)
    v = Verdict(expected=len(acked_set), send_errors=len(plan) - len(acked_set))
    seen: Counter[int] = Counter()
    for user, text in received:
        seq, dest = parse_text(text)
        if seq < 0 or seq >= len(plan):
            v.foreign += 1
            continue
        seen[seq] += 1
        if seen[seq] > 1:
            v.duplicated += 1
            continue
        if plan[seq] != user or dest != user:
            v.misrouted += 1
        v.delivered += 1
    v.lost = sum(1 for s in acked_set if s not in seen)
    v.leftover = leftover
    return v


def verify_broadcast(
    seqs: Sequence[int],
    recipients: Sequence[int],
    received: Iterable[tuple[int, str]],
    leftover: int,
) -> Verdict:
    """Every recipient index must get every broadcast seq exactly once."""
    want = set(seqs)
    rset = set(recipients)
    v = Verdict(expected=len(want) * len(rset))
    seen: Counter[tuple[int, int]] = Counter()
    for user, text in received:
        seq, dest = parse_text(text)
        if seq not in want or dest != BROADCAST:
            v.foreign += 1
            continue
        if user not in rset:
            v.misrouted += 1
            continue
        seen[(user, seq)] += 1
        if seen[(user, seq)] > 1:
            v.duplicated += 1
            continue
        v.delivered += 1
    v.lost = v.expected - v.delivered
    v.leftover = leftover
    return v
