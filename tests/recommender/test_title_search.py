"""Title terms and the embedded token index (``core.title_search``), against a brute-force
reference of the rule in its docstring."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.title_search import TitleIndex, title_terms


@pytest.mark.parametrize(
    ("title", "terms"),
    [
        ("Star Wars: Episode IV - A New Hope", ["star", "wars", "episode", "iv", "a", "new", "hope"]),
        ("Wall-E", ["wall", "e"]),
        ("Don't Look Up", ["don't", "look", "up"]),
        ("U.S. Marshals", ["u.s", "marshals"]),
        ("Se7en", ["se7en"]),
        ("2001: A Space Odyssey", ["2001", "a", "space", "odyssey"]),
        ("Amélie", ["amélie"]),
        ("Face/Off", ["face", "off"]),
        ("1,000 Clowns 2.5", ["1,000", "clowns", "2.5"]),
        ("!!!", []),
    ],
)
def test_terms_follow_the_standard_analyzer(title: str, terms: list[str]) -> None:
    # the same cuts OpenSearch's standard analyzer makes (checked against it by the contract test)
    assert title_terms(title) == terms


def reference(titles: list[str], ranking: list[int], query: str, limit: int) -> list[int]:
    terms = title_terms(query)
    if not terms:
        return []
    *whole, last = terms
    rows = [
        r for r in ranking
        if set(whole) <= set(title_terms(titles[r])) and any(t.startswith(last) for t in title_terms(titles[r]))
    ]
    return rows[:limit]


TITLES = [
    "Star Wars", "Star Trek", "Starship Troopers", "The Last Star", "Wall-E", "Don't Look Up",
    "U.S. Marshals", "Lost in Translation", "The Lost World", "Last Action Hero", "Amélie", "Se7en",
]
RANKING = [4, 0, 2, 11, 1, 7, 3, 9, 5, 8, 10, 6]  # row numbers, most popular first


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("star", [0, 2, 1, 3]),  # prefix: Starship too; most popular first
        ("star w", [0]),  # every term, the last as a prefix
        ("STAR   wars", [0]),
        ("wars star", [0]),  # any order: "wars" whole, "star" as a prefix
        ("l", [7, 3, 9, 5, 8]),
        ("last", [3, 9]),
        ("the l", [3, 8]),
        ("u.s", [6]),
        ("don", [5]),
        ("amelie", []),  # accents are kept on both sides
        ("?!", []),
        ("zzz", []),
    ],
)
def test_search_matches_every_term_the_last_as_a_prefix(query: str, expected: list[int]) -> None:
    index = TitleIndex(TITLES, np.asarray(RANKING))
    assert index.search(query, 10).tolist() == expected
    assert expected == reference(TITLES, RANKING, query, 10)


def test_limit_keeps_the_best_ranked() -> None:
    index = TitleIndex(TITLES, np.asarray(RANKING))
    assert index.search("l", 2).tolist() == [7, 3]
    assert index.search("l", 0).tolist() == []


WORDS = ["star", "stars", "war", "wars", "the", "a", "night", "knight", "nigh", "x"]


@settings(max_examples=60, deadline=None)
@given(
    titles=st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join), min_size=1, max_size=25),
    query=st.lists(st.sampled_from([*WORDS, "st", "n", "wa", "kn"]), min_size=1, max_size=3).map(" ".join),
    limit=st.integers(min_value=1, max_value=30),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_search_equals_the_reference(titles: list[str], query: str, limit: int, seed: int) -> None:
    ranking = np.random.default_rng(seed).permutation(len(titles))
    expected = reference(titles, ranking.tolist(), query, limit)
    assert TitleIndex(titles, ranking).search(query, limit).tolist() == expected
