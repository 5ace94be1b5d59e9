"""The constraint automaton against Python: re.fullmatch for --match, str methods for the rest."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnames.config import SampleConfig
from bnnames.constraints import DEAD, accepted_lengths, compile_constraints
from bnnames.data import Vocab
from bnnames.errors import ConfigError

VOCAB = Vocab(("-", "A", "a", "b", "c"))
WORDS = st.text(alphabet="-Aabc", max_size=9)
PIECES = st.text(alphabet="-Aabc", min_size=1, max_size=3)
PATTERNS = [
    "a|b",
    "(ab|c)*a?",
    "[^a]+b",
    "a{2,3}c*",
    "(?i)ab.",
    r"\w+-\w+",
    "[a-c]*(A|-)?",
    "a*?b+",
    ".*ca.*|b",
    "(a|)(b|)",
    r"[\-A]b{0,2}",
]


@settings(max_examples=300, deadline=None)
@given(pattern=st.sampled_from(PATTERNS), word=WORDS)
def test_match_is_re_fullmatch(pattern: str, word: str) -> None:
    automaton = compile_constraints(SampleConfig(match=pattern), VOCAB)
    assert automaton.accepts(VOCAB.encode(word)) == bool(re.fullmatch(pattern, word))


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.text(alphabet="-Aabc", max_size=2),
    suffix=st.text(alphabet="-Aabc", max_size=2),
    contains=st.lists(PIECES, max_size=2),
    without=st.lists(PIECES, max_size=2),
    word=WORDS,
)
def test_string_constraints_are_their_python_predicates(prefix, suffix, contains, without, word) -> None:  # type: ignore[no-untyped-def]
    config = SampleConfig(prefix=prefix, suffix=suffix, contains=tuple(contains), without=tuple(without))
    expected = (
        word.startswith(prefix)
        and word.endswith(suffix)
        and all(c in word for c in contains)
        and not any(w in word for w in without)
    )
    try:
        automaton = compile_constraints(config, VOCAB)
    except ConfigError:  # an empty language: then no word may satisfy it
        assert not expected
        return
    assert automaton.accepts(VOCAB.encode(word)) == expected
    # every state left can still reach an accepting one (dead states were dropped)
    assert automaton.start != DEAD and int(automaton.shortest.max()) <= automaton.states


def test_no_constraint_is_one_accepting_state() -> None:
    automaton = compile_constraints(SampleConfig(), VOCAB)
    assert automaton.trivial and automaton.states == 1


def test_the_accepted_lengths_are_those_of_the_language() -> None:
    automaton = compile_constraints(SampleConfig(match="(ab)+c?"), VOCAB)
    assert accepted_lengths(automaton, 6) == [False, False, True, True, True, True, True]


@pytest.mark.parametrize(
    ("settings_", "fragment"),
    [
        ({"match": "[0-9]+"}, "--match '[0-9]+' matches no name made of this model's characters"),
        ({"contains": ("aaa",), "max_length": 6, "suffix": "bbbb"}, "together match only names of 7 or more"),
        ({"contains": ("Z",)}, "--contains 'Z' has characters not in the vocabulary"),
        ({"suffix": "é"}, "--suffix 'é' has characters not in the vocabulary"),
        ({"prefix": "ab", "without": ("b",)}, "--prefix 'ab' --without 'b' together match no name"),
        ({"match": "(aa)+", "min_length": 3, "max_length": 3}, "no name of 3 to 3 characters"),
        ({"match": "a(?!b)"}, "cannot express"),
        ({"match": r"(a)\1"}, "cannot express"),
        ({"match": "a["}, "not a valid regular expression"),
    ],
)
def test_an_empty_or_unreadable_constraint_is_named(settings_: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        compile_constraints(SampleConfig(**settings_), VOCAB)
