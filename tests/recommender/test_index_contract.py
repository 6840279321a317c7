"""The vector index contract, run against NumpyIndex and OpenSearchIndex (osmem + k-NN emulation,
or a real cluster with --opensearch-url). Every answer is compared with a brute-force reference
computed from ``Filters.matches`` and the inner product."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import pytest

from core.aws import opensearch_client
from core.features import Movie
from recommender.adapters.numpy_index import NumpyIndex
from recommender.adapters.opensearch_index import OpenSearchIndex
from recommender.ports import NO_FILTERS, Filters, Hit, VectorIndex
from recs.local.synthetic import synthetic_catalog
from tests.support.opensearch_fixtures import create_movie_index

DIM = 8


def contract_catalog() -> tuple[list[Movie], np.ndarray]:
    """150 synthetic movies plus one without a year and one without genres; random vectors."""
    movies = synthetic_catalog(150, seed=3)
    movies.append(Movie(9001, "Undated", None, ("Drama", "Comedy"), 50.0))
    movies.append(Movie(9002, "Genreless", 1999, (), 2.0))
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((len(movies), DIM)).astype(np.float32)
    vectors[:, -1] = np.log1p([m.popularity for m in movies])
    return movies, vectors


MOVIES, VECTORS = contract_catalog()
BY_ID = {m.movie_id: i for i, m in enumerate(MOVIES)}


def reference_search(query: np.ndarray, k: int, filters: Filters, exclude: Collection[int]) -> list[tuple[int, float]]:
    scores = VECTORS @ query.astype(np.float32)
    rows = [i for i, m in enumerate(MOVIES) if filters.matches(m) and m.movie_id not in exclude]
    rows.sort(key=lambda i: (-float(scores[i]), MOVIES[i].movie_id))
    return [(MOVIES[i].movie_id, float(scores[i])) for i in rows[:k]]


def reference_popular(k: int, filters: Filters, exclude: Collection[int]) -> list[int]:
    rows = [m for m in MOVIES if filters.matches(m) and m.movie_id not in exclude]
    rows.sort(key=lambda m: (-m.popularity, m.movie_id))
    return [m.movie_id for m in rows[:k]]


def ids(hits: list[Hit]) -> list[int]:
    return [h.movie.movie_id for h in hits]


@pytest.fixture(
    params=["numpy", pytest.param("opensearch", marks=pytest.mark.opensearch)],
)
def index(request: pytest.FixtureRequest) -> VectorIndex:
    if request.param == "numpy":
        return NumpyIndex.from_arrays(MOVIES, VECTORS, "contract")
    url: str = request.getfixturevalue("opensearch_url")
    unique_name: Callable[[str], str] = request.getfixturevalue("unique_name")
    alias = unique_name("movies")
    create_movie_index(url, unique_name("movies-contract"), alias, MOVIES, VECTORS, model_version="contract")
    return OpenSearchIndex(opensearch_client(url, timeout_seconds=10), alias)


def query_vector(seed: int) -> np.ndarray:
    q = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    q[-1] = 0.2
    return q


def assert_same_ranking(hits: list[Hit], expected: list[tuple[int, float]]) -> None:
    assert ids(hits) == [i for i, _ in expected]
    for hit, (_, score) in zip(hits, expected, strict=True):
        assert hit.score == pytest.approx(score, rel=1e-4, abs=1e-4)


def test_search_without_filters_is_the_exact_top_k(index: VectorIndex) -> None:
    q = query_vector(1)
    assert_same_ranking(index.search(q, 10), reference_search(q, 10, NO_FILTERS, ()))


def test_filters_go_inside_the_search_so_k_results_survive(index: VectorIndex) -> None:
    q = query_vector(2)
    flt = Filters(genres_any=("Drama", "Comedy"), year_min=1950, year_max=2010)
    expected = reference_search(q, 10, flt, ())
    assert len(expected) == 10, "the contract catalog must have at least k qualifying movies"
    hits = index.search(q, 10, flt)
    assert_same_ranking(hits, expected)
    assert all(flt.matches(h.movie) for h in hits)


def test_genres_none_and_excluded_ids_are_left_out_and_k_is_kept(index: VectorIndex) -> None:
    q = query_vector(3)
    unfiltered = ids(index.search(q, 5))
    flt = Filters(genres_none=("Horror",))
    hits = index.search(q, 10, flt, exclude_ids=unfiltered)
    assert len(hits) == 10
    assert not set(ids(hits)) & set(unfiltered)
    assert all("Horror" not in h.movie.genres for h in hits)
    assert_same_ranking(hits, reference_search(q, 10, flt, unfiltered))


def test_excluded_ids_alone_still_give_k_results(index: VectorIndex) -> None:
    q = query_vector(6)
    seen = [*ids(index.search(q, 7)), 123456]  # the 7 best, and an id the catalog does not have
    hits = index.search(q, 10, NO_FILTERS, exclude_ids=seen)
    assert_same_ranking(hits, reference_search(q, 10, NO_FILTERS, seen))
    assert len(hits) == 10


def test_fewer_than_k_qualify_returns_exactly_those(index: VectorIndex) -> None:
    q = query_vector(4)
    flt = Filters(year_min=1999, year_max=1999)
    expected = reference_search(q, 100, flt, ())
    assert 0 < len(expected) < 100
    assert_same_ranking(index.search(q, 100, flt), expected)


def test_a_movie_without_a_year_fails_any_year_bound(index: VectorIndex) -> None:
    q = VECTORS[BY_ID[9001]].copy()  # its own vector: nearest to itself without filters
    assert 9001 in ids(index.search(q, 3))
    assert 9001 not in ids(index.search(q, 200, Filters(year_min=1800)))
    assert 9001 in ids(index.search(q, 3, Filters(genres_any=("Comedy",))))


def test_popular_orders_by_popularity_then_id_under_filters(index: VectorIndex) -> None:
    assert ids(index.popular(10)) == reference_popular(10, NO_FILTERS, ())
    flt = Filters(genres_any=("Action",), year_max=2000)
    exclude = reference_popular(3, flt, ())
    hits = index.popular(10, flt, exclude)
    assert ids(hits) == reference_popular(10, flt, exclude)
    assert [h.score for h in hits] == [h.movie.popularity for h in hits]


def test_get_vector_and_existing(index: VectorIndex) -> None:
    movie = MOVIES[BY_ID[9002]]
    assert index.get(9002) == movie
    assert index.get(123456) is None
    vector = index.vector(9001)
    assert vector is not None
    np.testing.assert_allclose(vector, VECTORS[BY_ID[9001]], rtol=1e-6, atol=1e-6)
    assert index.vector(123456) is None
    assert index.existing({1, 2, 9001, 123456, 777777}) == {1, 2, 9001}
    assert index.existing(set()) == set()


def test_status_reports_the_catalog(index: VectorIndex) -> None:
    status = index.status()
    assert status.ok, status.detail
    assert status.info["movies"] == len(MOVIES)
    assert status.info.get("model_version") == "contract"


def test_unknown_genres_match_nothing(index: VectorIndex) -> None:
    flt: dict[str, Any] = {"genres_any": ("No Such Genre",)}
    assert index.search(query_vector(5), 10, Filters(**flt)) == []
    assert index.popular(10, Filters(**flt)) == []
