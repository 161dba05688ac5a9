"""The client's roster matches names exactly as the server does (B9): by the protocol's own
name_key, so the two can never drift apart."""

from __future__ import annotations

import pytest

from mailslot.gui.roster import Roster, filter_key, name_problem
from mailslot.protocol.names import InvalidName, display_name, name_key

TRICKY = ["ǰ", "ß", "SS", "ﬁle", "FILE", "Ǆemal", "ǅemal", "İstanbul", "istanbul", "Ωmega"]


TYPED = [*TRICKY, "j\u030c"]  # j + combining caron: no name, though it folds like "ǰ"


@pytest.mark.parametrize("known", TRICKY)
def test_lookups_agree_with_the_protocol(known: str) -> None:
    roster = Roster()
    roster.replace([(known, False)])
    for typed in TYPED:
        try:
            same = name_key(typed) == name_key(known)
        except InvalidName:
            same = False
        assert (roster.lookup(typed) is not None) == same, (known, typed)


def test_invalid_input_is_no_one_and_filters_still_work() -> None:
    roster = Roster()
    roster.replace([("alice", True), ("bob", False)])
    assert roster.lookup("no spaces!") is None
    assert roster.completions("a b") == []
    assert roster.completions("AL") == ["alice"]
    assert filter_key("li c") == "li c"  # not a name, still a filter


def test_name_problems_are_the_protocols_sentences() -> None:
    assert name_problem("alice") is None
    for bad in ("", "x" * 33, "no spaces"):
        with pytest.raises(InvalidName) as refused:
            display_name(bad)
        problem = name_problem(bad)
        assert problem is not None and problem.lower().startswith(str(refused.value).lower()[:12])
        assert problem[0] == problem[0].upper() and problem.endswith(".")
