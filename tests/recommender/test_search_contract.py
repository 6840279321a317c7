"""The title search and multi-vector parts of the vector index port, run against NumpyIndex and
OpenSearchIndex (osmem + k-NN emulation, or a real cluster with --opensearch-url), each answer
compared with the rule of ``core.title_search`` computed by brute force."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from core.aws import opensearch_client
from core.features import Movie
from core.title_search import title_terms
from recommender.adapters.numpy_index import NumpyIndex
from recommender.adapters.opensearch_index import OpenSearchIndex
from recommender.ports import VectorIndex
from recs.local.synthetic import synthetic_catalog
from tests.support.opensearch_fixtures import create_movie_index

DIM = 6
TRICKY = [
    "Wall-E", "Don't Look Up", "U.S. Marshals", "Se7en", "8½ Women", "Amélie", "Alien³", "Face/Off",
    "Star Wars: Episode IV - A New Hope", "2001: A Space Odyssey", "Lord of the Rings: The Two Towers, The",
]


def search_catalog() -> tuple[list[Movie], np.ndarray]:
    """120 synthetic titles ("The <word> <word> <n>", popularity ties included) and the tricky ones."""
    movies = synthetic_catalog(120, seed=4)
    movies += [Movie(9000 + i, title, 1990 + i, ("Drama",), float(5 + i % 3)) for i, title in enumerate(TRICKY)]
    vectors = np.random.default_rng(2).standard_normal((len(movies), DIM)).astype(np.float32)
    return movies, vectors


MOVIES, VECTORS = search_catalog()
ROW = {m.movie_id: i for i, m in enumerate(MOVIES)}


def reference(query: str, limit: int) -> list[int]:
    terms = title_terms(query)
    if not terms:
        return []
    *whole, last = terms
    hits = []
    for movie in sorted(MOVIES, key=lambda m: (-m.popularity, m.movie_id)):
        title = title_terms(movie.title)
        if set(whole) <= set(title) and any(t.startswith(last) for t in title):
            hits.append(movie.movie_id)
    return hits[:limit]


@pytest.fixture(params=["numpy", pytest.param("opensearch", marks=pytest.mark.opensearch)])
def index(request: pytest.FixtureRequest) -> VectorIndex:
    if request.param == "numpy":
        return NumpyIndex.from_arrays(MOVIES, VECTORS, "search-contract")
    url: str = request.getfixturevalue("opensearch_url")
    unique_name: Callable[[str], str] = request.getfixturevalue("unique_name")
    alias = unique_name("movies")
    create_movie_index(url, unique_name("movies-search"), alias, MOVIES, VECTORS, model_version="search-contract")
    return OpenSearchIndex(opensearch_client(url, timeout_seconds=10), alias)


QUERIES = [
    "night", "the n", "NIGHT   star", "star night", "st", "s", "the dark c", "12", "1", "wall-e", "wall e", "e",
    "don", "don't", "u.s", "u.s.", "se7", "8", "women", "amélie", "amelie", "alien", "face off", "star wars: ep",
    "2001", "lord of the r", "zzz", "!!", "   ",
]


@pytest.mark.parametrize("query", QUERIES)
def test_title_search_follows_the_rule(index: VectorIndex, query: str) -> None:
    expected = reference(query, 100)
    found = index.search_titles(query, 100)
    assert [m.movie_id for m in found] == expected
    assert all(m == MOVIES[ROW[m.movie_id]] for m in found)  # whole movies, vectors left out


def test_title_search_limit_keeps_the_most_popular(index: VectorIndex) -> None:
    everything = reference("the", 1000)
    assert len(everything) > 50
    assert [m.movie_id for m in index.search_titles("the", 7)] == everything[:7]
    assert [m.movie_id for m in index.search_titles("the", 1)] == everything[:1]


def test_vectors_come_back_for_the_movies_the_index_holds(index: VectorIndex) -> None:
    wanted = {1, 2, 9003, 120, 123456}
    got = index.vectors(wanted)
    assert set(got) == {1, 2, 9003, 120}
    for movie_id, vector in got.items():
        np.testing.assert_allclose(vector, VECTORS[ROW[movie_id]], rtol=1e-6, atol=1e-6)
    assert index.vectors(set()) == {}
    assert index.vectors({777777}) == {}
