"""Username rules: UTS #39 against look-alike names (issue 7, defect 7)."""

import subprocess
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailslot.protocol import InvalidName, confusable_keys, display_name, name_key
from mailslot.protocol.names import MAX_NAME_LENGTH, _ascii_problem, _unicode_problem

CYRILLIC_A = "\u0430"
CYRILLIC_I = "\u0456"
CYRILLIC_IE = "\u0435"
GREEK_OMICRON = "\u03bf"


def confusable(a: str, b: str) -> bool:
    return bool(set(confusable_keys(a)) & set(confusable_keys(b)))


def refusal(name: str) -> str:
    with pytest.raises(InvalidName) as error:
        display_name(name)
    return str(error.value)


# Every look-alike from the defect, with the name it imitates.
IMPOSTORS = [
    ("alice", CYRILLIC_A + "lice"),
    ("alice", "al" + CYRILLIC_I + "c" + CYRILLIC_IE),
    ("bob", "b" + GREEK_OMICRON + "b"),
    ("alice", "aIice"),
    ("Alice", "aIice"),
    ("alice", "alice\u3164"),
    ("alice", "alice\uffa0"),
]


@pytest.mark.parametrize(("victim", "impostor"), IMPOSTORS)
def test_every_look_alike_of_the_defect_collides_with_its_victim(
    victim: str, impostor: str
) -> None:
    assert name_key(victim) != name_key(impostor)
    assert confusable(victim, impostor)
    assert confusable(impostor, victim)


@pytest.mark.parametrize(
    "impostor",
    [CYRILLIC_A + "lice", "al" + CYRILLIC_I + "c" + CYRILLIC_IE, "b" + GREEK_OMICRON + "b"],
)
def test_mixed_script_look_alikes_are_refused_outright(impostor: str) -> None:
    message = refusal(impostor)
    assert "cannot mix scripts" in message
    assert "Latin" in message


def test_capital_i_for_small_l_is_a_valid_name_that_collides_in_every_case() -> None:
    assert display_name("aIice") == "aIice"
    assert name_key("aIice") == "aiice"  # which is why a skeleton of the key alone misses it
    for victim in ["alice", "Alice", "ALICE"]:
        assert confusable("aIice", victim)
        assert confusable("AIice", victim)


@pytest.mark.parametrize(
    "invisible",
    ["\u3164", "\uffa0", "\u115f", "\u1160", "\u200d", "\u200c", "\u200b", "\u2060", "\u00ad"],
)
@pytest.mark.parametrize("where", ["end", "middle", "alone"])
def test_fillers_and_invisible_characters_are_refused(invisible: str, where: str) -> None:
    name = {"end": "alice" + invisible, "middle": "al" + invisible + "ice", "alone": invisible}
    assert "invisible" in refusal(name[where])


def test_a_refusal_names_the_character_in_words() -> None:
    assert refusal("alice\u3164") == (
        "a username cannot contain invisible characters (U+1160 HANGUL JUNGSEONG FILLER)"
    )
    assert "U+13E3 CHEROKEE LETTER TSA" in refusal("ᏣᎳᎩ")


WHOLE_SCRIPT_LOOK_ALIKES = [
    ("ape", "аре"),  # all Cyrillic
    ("bob", "ВОВ"),  # Cyrillic capitals, which look like BOB, the same user as bob
    ("pop", "рор"),
    ("xo", "хо"),
]


@pytest.mark.parametrize(("latin", "other"), WHOLE_SCRIPT_LOOK_ALIKES)
def test_a_name_in_one_other_script_is_valid_but_collides_with_its_latin_twin(
    latin: str, other: str
) -> None:
    assert display_name(other) == other
    assert confusable(latin, other)


VALID_NAMES = [
    "alice",
    "Bob_the-builder.2",
    "José",
    "Zoë",
    "Ødegaard",
    "Straße",
    "Łukasz",
    "Nguyễn",
    "Çağrı",
    "田中",
    "たなか",
    "タナカ",
    "山田Taro",
    "山田たなかタロウ",
    "Taroたなか",
    "王小明Wang",
    "王ㄅㄆ",
    "김민준",
    "김Kim",
    "李Kim김",
    "Ελένη",
    "Влад",
    "Дмитрий_1990",
    "محمد٢٠٠٠",
    "कमल१२",
    "محمد",
    "דוד",
    "ราชา",
    "Ararat",
    "Արամ",
    "ნინო",
    "Ῥόδος",
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_ordinary_names_in_many_scripts_stay_valid(name: str) -> None:
    assert display_name(name) == unicodedata.normalize("NFKC", name)
    assert confusable_keys(name)


@pytest.mark.parametrize(
    "name",
    [
        "p" + CYRILLIC_A + "ypal",
        "Ελένηbob",
        "ВладΕλένη",
        "김たなか",  # Hangul with kana: neither Korean nor Japanese
        "محمدali",
        "Влад田中",
    ],
)
def test_names_mixing_scripts_are_refused(name: str) -> None:
    assert "cannot mix scripts" in refusal(name)


@pytest.mark.parametrize("name", ["محمد1٢", "محمد٣۳", "कमल१1"])
def test_names_mixing_number_systems_are_refused(name: str) -> None:
    assert "digits of different number systems" in refusal(name)


@pytest.mark.parametrize("name", ["ᏣᎳᎩ", "ᚠᚢᚦ", "ⴰⵣⵓⵍ"])
def test_scripts_unicode_does_not_recommend_for_identifiers_are_refused(name: str) -> None:
    assert "does not recommend" in refusal(name)


@pytest.mark.parametrize("name", ["o'neil", "a b", "bob!", "a/b", "😀", "x" * 33, "", "  "])
def test_todays_rules_still_hold(name: str) -> None:
    assert refusal(name)
    with pytest.raises(InvalidName):
        name_key(name)
    with pytest.raises(InvalidName):
        confusable_keys(name)


def test_a_long_name_is_refused_before_normalising_and_never_cached() -> None:
    before = display_name.cache_info().currsize, name_key.cache_info().currsize
    for padding in [" " * 10_000, "e\u0301" * 5_000]:
        for check in (display_name, name_key, confusable_keys):
            with pytest.raises(InvalidName, match="at most 32 characters"):
                check(padding + "alice")
    assert (display_name.cache_info().currsize, name_key.cache_info().currsize) == before


@pytest.mark.parametrize(("a", "b"), [("alice", "bob"), ("ALICE", "ALLCE"), ("anna", "hanna")])
def test_names_that_do_not_look_alike_do_not_collide(a: str, b: str) -> None:
    assert not confusable(a, b)


def test_names_stored_before_these_rules_keep_their_key_and_can_be_compared() -> None:
    legacy = "alice\u3164"
    assert name_key(legacy) != name_key("alice")
    assert name_key("ᏣᎳᎩ") == name_key("ꮳꮃꭹ")
    assert confusable(legacy, "alice")


def test_ascii_names_do_not_load_the_unicode_tables() -> None:
    script = (
        "from mailslot.protocol import names\n"
        "names.display_name('Alice'); names.name_key('bob.2')\n"
        "assert names._tables.cache_info().currsize == 0\n"
        "names.display_name('José')\n"
        "assert names._tables.cache_info().currsize == 1\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


NORMALISED_ASCII = (
    st.text(st.characters(max_codepoint=127), min_size=1, max_size=MAX_NAME_LENGTH)
    .map(lambda text: unicodedata.normalize("NFKC", text).strip())
    .filter(bool)
)


@given(NORMALISED_ASCII)
def test_the_ascii_fast_path_answers_like_the_unicode_path(name: str) -> None:
    assert _ascii_problem(name) == _unicode_problem(name)


@given(st.text(st.sampled_from("aAbBiIlL1O0o._-" + "z" * 3), min_size=1, max_size=12))
def test_ascii_names_pass_the_fast_path_as_the_full_rules_would(name: str) -> None:
    assert display_name(name) == name
    assert _unicode_problem(name) is None


def _sample_characters() -> st.SearchStrategy[str]:
    letters = st.characters(categories=["Lu", "Ll", "Lo", "Nd", "Mn", "Cf", "Zs"])
    return st.one_of(letters, st.sampled_from("aIl0O._-" + CYRILLIC_A + GREEK_OMICRON + "\u3164"))


@settings(max_examples=300)
@given(st.text(_sample_characters(), min_size=0, max_size=MAX_NAME_LENGTH + 2))
def test_any_text_is_a_name_or_a_sentence_and_accepted_names_are_stable(raw: str) -> None:
    try:
        name = display_name(raw)
    except InvalidName as error:
        assert str(error)
        return
    assert display_name(name) == name
    assert name_key(name) == name_key(raw)
    assert 1 <= len(name) <= MAX_NAME_LENGTH
    keys = confusable_keys(raw)
    assert keys and set(keys) == set(confusable_keys(name))
