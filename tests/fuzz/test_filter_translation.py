"""Property tests of the filter translation: ``Filters`` + seen movies -> the k-NN query, in both adapters.

The reference semantics are ``Filters.matches`` (``recommender/ports.py``) plus "not seen". Three
properties:

* the OpenSearch query (``filter_clause`` inside ``knn_query``, and ``popular_query``), evaluated by
  a small interpreter of the query clauses it uses, keeps exactly the movies the reference keeps;
* ``NumpyIndex`` returns exactly the reference top k (inner product, ties by catalog row);
* ``OpenSearchIndex`` on a real OpenSearch REST API (osmem behind the k-NN emulation, or a real
  cluster) returns the same movies as ``NumpyIndex`` for the same query.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.features import Movie
from recommender.adapters.numpy_index import NumpyIndex
from recommender.adapters.opensearch_index import SOURCE_EXCLUDES, filter_clause, knn_query, popular_query
from recommender.ports import Filters

GENRE_POOL = ("Action", "Comedy", "Drama", "Horror", "Sci-Fi")
DIMENSION = 6

# -- strategies ------------------------------------------------------------------------------------

genre_names = st.sampled_from((*GENRE_POOL, "Western", "Unknown Genre"))
years = st.integers(1985, 2005)


@st.composite
def filters_strategy(draw: st.DrawFn) -> Filters:
    bounds = sorted(draw(st.lists(years, min_size=2, max_size=2)))
    return Filters(
        genres_any=tuple(draw(st.lists(genre_names, max_size=3))),
        genres_none=tuple(draw(st.lists(genre_names, max_size=2))),
        year_min=bounds[0] if draw(st.booleans()) else None,
        year_max=bounds[1] if draw(st.booleans()) else None,
    )


@st.composite
def catalogs(draw: st.DrawFn, max_size: int = 40) -> list[Movie]:
    n = draw(st.integers(1, max_size))
    ids = draw(st.lists(st.integers(1, 10_000), min_size=n, max_size=n, unique=True))
    return [
        Movie(movie_id, f"Movie {movie_id}", draw(st.none() | years),
              tuple(sorted(set(draw(st.lists(st.sampled_from(GENRE_POOL), max_size=3))))),
              float(draw(st.integers(0, 50))))
        for movie_id in ids
    ]


# -- a small interpreter of the query clauses the adapter emits --------------------------------------

def clause_matches(clause: dict[str, Any], doc_id: str, source: dict[str, Any]) -> bool:
    """OpenSearch semantics of ``bool`` (filter/must/must_not), ``terms``, ``range``, ``ids``, ``match_all``."""
    (kind, body), = clause.items()
    if kind == "match_all":
        return True
    if kind == "bool":
        assert set(body) <= {"filter", "must", "must_not"}, body
        required = [*body.get("filter", []), *body.get("must", [])]
        return all(clause_matches(c, doc_id, source) for c in required) and not any(
            clause_matches(c, doc_id, source) for c in body.get("must_not", []))
    if kind == "terms":
        (field, values), = body.items()
        value = source.get(field)
        present = value if isinstance(value, list) else [] if value is None else [value]
        return bool(set(present) & set(values))
    if kind == "range":
        (field, bounds), = body.items()
        value = source.get(field)
        if value is None:
            return False  # a document without the field never matches a range
        assert set(bounds) <= {"gte", "lte"}, bounds
        return ("gte" not in bounds or value >= bounds["gte"]) and ("lte" not in bounds or value <= bounds["lte"])
    if kind == "ids":
        assert all(isinstance(v, str) for v in body["values"])  # document ids are strings
        return doc_id in body["values"]
    raise AssertionError(f"the adapter emitted a clause the interpreter does not know: {kind}")


def reference_keeps(movie: Movie, filters: Filters, seen: set[int]) -> bool:
    return filters.matches(movie) and movie.movie_id not in seen


def reference_top_k(catalog: list[Movie], vectors: np.ndarray, query: np.ndarray, k: int, filters: Filters,
                    seen: set[int]) -> list[int]:
    scores = vectors @ query
    rows = [r for r in range(len(catalog)) if reference_keeps(catalog[r], filters, seen)]
    rows.sort(key=lambda r: (-scores[r], r))
    return [catalog[r].movie_id for r in rows[:k]]


def vectors_for(catalog: list[Movie], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((len(catalog), DIMENSION)).astype(np.float32)


# -- properties ------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(catalog=catalogs(), filters=filters_strategy(), data=st.data(), k=st.integers(1, 100))
def test_the_opensearch_query_keeps_exactly_what_the_filters_keep(catalog: list[Movie], filters: Filters,
                                                                  data: st.DataObject, k: int) -> None:
    seen = set(data.draw(st.lists(st.sampled_from([m.movie_id for m in catalog]) | st.integers(1, 10_000),
                                  max_size=5)))
    vector = np.random.default_rng(k).standard_normal(DIMENSION).astype(np.float32)
    body = knn_query(vector, k, filters, seen)
    # the filter sits inside the knn clause, so k results survive filtering; no post-filter anywhere
    assert set(body) == {"size", "_source", "query"} and body["size"] == k
    assert body["_source"] == {"excludes": SOURCE_EXCLUDES}
    knn = body["query"]["knn"]["embedding"]
    assert set(body["query"]) == {"knn"} and knn["k"] == k
    assert np.array_equal(np.asarray(knn["vector"], dtype=np.float32), vector)
    clause = filter_clause(filters, seen)
    assert knn.get("filter") == clause
    assert (clause is None) == (filters.is_empty() and not seen)
    popular = popular_query(k, filters, seen)
    assert popular["query"] == (clause or {"match_all": {}}) and popular["size"] == k
    assert popular["sort"] == [{"popularity": {"order": "desc"}}, {"movie_id": {"order": "asc"}}]
    for movie in catalog:
        source = movie.to_dict()
        kept = True if clause is None else clause_matches(clause, str(movie.movie_id), source)
        assert kept == reference_keeps(movie, filters, seen), (movie, filters, seen, clause)


@settings(max_examples=300, deadline=None)
@given(catalog=catalogs(), filters=filters_strategy(), data=st.data(), k=st.integers(1, 50),
       seed=st.integers(0, 2**16))
def test_numpy_index_returns_the_reference_top_k(catalog: list[Movie], filters: Filters, data: st.DataObject,
                                                 k: int, seed: int) -> None:
    seen = set(data.draw(st.lists(st.sampled_from([m.movie_id for m in catalog]), max_size=5)))
    vectors = vectors_for(catalog, seed)
    query = np.random.default_rng(seed + 1).standard_normal(DIMENSION).astype(np.float32)
    index = NumpyIndex.from_arrays(catalog, vectors, "m")
    hits = index.search(query, k, filters, seen)
    assert [h.movie.movie_id for h in hits] == reference_top_k(catalog, vectors, query, k, filters, seen)
    popular = index.popular(k, filters, seen)
    expected = sorted((m for m in catalog if reference_keeps(m, filters, seen)),
                      key=lambda m: (-m.popularity, m.movie_id))[:k]
    assert [h.movie.movie_id for h in popular] == [m.movie_id for m in expected]


# -- the same query on OpenSearch's REST API ---------------------------------------------------------

OPENSEARCH_CATALOG_SIZE = 80


@pytest.mark.opensearch
def test_opensearch_and_numpy_answer_the_same(opensearch_url: str, unique_name: Any) -> None:
    from core.aws import opensearch_client
    from recommender.adapters.opensearch_index import OpenSearchIndex
    from tests.support.opensearch_fixtures import create_movie_index

    rng = np.random.default_rng(3)
    catalog = [
        Movie(i * 7, f"Movie {i}", None if i % 9 == 0 else int(rng.integers(1985, 2006)),
              tuple(sorted({GENRE_POOL[int(j)] for j in rng.integers(0, len(GENRE_POOL), int(rng.integers(0, 3)))})),
              float(rng.integers(0, 50)))
        for i in range(1, OPENSEARCH_CATALOG_SIZE + 1)
    ]
    vectors = vectors_for(catalog, 4)
    alias = unique_name("movies")
    create_movie_index(opensearch_url, unique_name("movies-v1"), alias, catalog, vectors, model_version="m")
    remote = OpenSearchIndex(opensearch_client(opensearch_url, timeout_seconds=30), alias)
    local = NumpyIndex.from_arrays(catalog, vectors, "m")
    ids = [m.movie_id for m in catalog]

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(filters=filters_strategy(), seen=st.lists(st.sampled_from(ids), max_size=6), k=st.integers(1, 30),
           seed=st.integers(0, 2**16))
    def same(filters: Filters, seen: list[int], k: int, seed: int) -> None:
        query = np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)
        expected = local.search(query, k, filters, set(seen))
        got = remote.search(query, k, filters, set(seen))
        assert [h.movie.movie_id for h in got] == [h.movie.movie_id for h in expected]
        assert np.allclose([h.score for h in got], [h.score for h in expected], atol=1e-4)
        assert [h.movie for h in remote.popular(k, filters, set(seen))] == [
            h.movie for h in local.popular(k, filters, set(seen))]

    same()
