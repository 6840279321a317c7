"""k-NN search semantics, as black-box HTTP tests.

The ``opensearch``-marked tests hold for a real OpenSearch too (``pytest -m opensearch --opensearch-url
http://localhost:9200``): they check that the emulation in ``tests/support/knn_emulation.py`` does what
the documented k-NN plugin does. The unmarked ones test the emulation proxy itself.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from opensearchpy import OpenSearch
from opensearchpy import exceptions as opensearch_exceptions
from osmem_server import OsmemServer

from core.features import Movie
from tests.support.http import request
from tests.support.knn_emulation import KnnEmulationProxy, knn_scores
from tests.support.opensearch_fixtures import create_movie_index, movie_index_body

UniqueName = Callable[[str], str]


def movies(n: int, genres: tuple[str, ...] = ("Drama",)) -> list[Movie]:
    return [
        Movie(movie_id=i + 1, title=f"Movie {i + 1}", year=1990 + i, genres=genres, popularity=float(i))
        for i in range(n)
    ]


def knn_body(
    vector: list[float], k: int, *, size: int | None = None, filter: Any = None, **extra: Any
) -> dict[str, Any]:
    clause: dict[str, Any] = {"vector": vector, "k": k}
    if filter is not None:
        clause["filter"] = filter
    body: dict[str, Any] = {"query": {"knn": {"embedding": clause}}, **extra}
    if size is not None:
        body["size"] = size
    return body


def search(url: str, target: str, body: dict[str, Any], expect: tuple[int, ...] = (200,)) -> dict[str, Any]:
    result: dict[str, Any] = request(url, "POST", f"/{target}/_search", body, expect=expect).body
    return result


def ids(result: dict[str, Any]) -> list[str]:
    return [hit["_id"] for hit in result["hits"]["hits"]]


def line_index(url: str, name: str, n: int = 20, **kwargs: Any) -> None:
    """Movies 1..n at x = 1..n on a line: with l2 from the origin, movie i is the i-th nearest."""
    vectors = [[float(i + 1), 0.0] for i in range(n)]
    create_movie_index(url, name, None, movies(n), vectors, space_type="l2", **kwargs)


@pytest.mark.opensearch
def test_k_bounds_the_hits_and_size_pages_within_them(opensearch_url: str, unique_name: UniqueName) -> None:
    index = unique_name("knn")
    line_index(opensearch_url, index)
    three = search(opensearch_url, index, knn_body([0.0, 0.0], 5, size=3))
    assert ids(three) == ["1", "2", "3"]
    assert three["hits"]["total"] == {"value": 5, "relation": "eq"}
    all_k = search(opensearch_url, index, knn_body([0.0, 0.0], 5, size=50))
    assert ids(all_k) == ["1", "2", "3", "4", "5"]
    tail = search(opensearch_url, index, knn_body([0.0, 0.0], 5, size=10, **{"from": 3}))
    assert ids(tail) == ["4", "5"]
    default_size = search(opensearch_url, index, knn_body([0.0, 0.0], 15))
    assert len(default_size["hits"]["hits"]) == 10
    scores = [hit["_score"] for hit in all_k["hits"]["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert all_k["hits"]["max_score"] == pytest.approx(scores[0])


@pytest.mark.opensearch
def test_filter_inside_knn_applies_before_top_k(opensearch_url: str, unique_name: UniqueName) -> None:
    index = unique_name("knn")
    # The 6 nearest movies are comedies; 6 dramas lie further away.
    catalog = movies(6, ("Comedy",)) + [
        Movie(movie_id=100 + i, title=f"Drama {i}", year=2000 + i, genres=("Drama",)) for i in range(6)
    ]
    vectors = [[float(i + 1), 0.0] for i in range(6)] + [[float(i + 10), 0.0] for i in range(6)]
    create_movie_index(opensearch_url, index, None, catalog, vectors, space_type="l2")
    flt = {"bool": {"filter": [{"term": {"genres": "Drama"}}], "must_not": [{"ids": {"values": ["101"]}}]}}
    result = search(opensearch_url, index, knn_body([0.0, 0.0], 4, size=10, filter=flt))
    assert ids(result) == ["100", "102", "103", "104"]  # k results survive the filter
    assert result["hits"]["total"]["value"] == 4
    few = search(opensearch_url, index, knn_body([0.0, 0.0], 4, filter={"range": {"year": {"gte": 2004}}}))
    assert ids(few) == ["104", "105"]  # fewer matches than k: all of them


@pytest.mark.opensearch
def test_bool_filter_beside_knn_is_a_post_filter(opensearch_url: str, unique_name: UniqueName) -> None:
    index = unique_name("knn")
    catalog = [Movie(i, f"M{i}", 2000, ("Drama",) if i % 2 else ("Comedy",)) for i in range(1, 11)]
    vectors = [[float(i), 0.0] for i in range(1, 11)]
    create_movie_index(opensearch_url, index, None, catalog, vectors, space_type="l2")
    body = {
        "size": 10,
        "query": {
            "bool": {
                "must": [{"knn": {"embedding": {"vector": [0.0, 0.0], "k": 4}}}],
                "filter": [{"term": {"genres": "Drama"}}],
            }
        },
    }
    assert ids(search(opensearch_url, index, body)) == ["1", "3"]  # the 4 nearest, then filtered
    post = knn_body([0.0, 0.0], 4, size=10, post_filter={"term": {"genres": "Comedy"}})
    assert ids(search(opensearch_url, index, post)) == ["2", "4"]
    should = {
        "size": 10,
        "query": {
            "bool": {
                "should": [{"knn": {"embedding": {"vector": [0.0, 0.0], "k": 3}}}],
                "must_not": [{"ids": {"values": ["2"]}}],
            }
        },
    }
    assert ids(search(opensearch_url, index, should)) == ["1", "3"]


SCORE_CASES = [
    # (space, engine, document vectors, query, expected scores in document order)
    ("innerproduct", "faiss", [[1.0, 0.0], [0.5, 0.5], [-2.0, 0.0], [0.0, 1.0]], [1.0, 0.0], [2.0, 1.5, 1 / 3, 1.0]),
    ("innerproduct", "lucene", [[1.0, 0.0], [0.5, 0.5], [-2.0, 0.0], [0.0, 1.0]], [1.0, 0.0], [2.0, 1.5, 1 / 3, 1.0]),
    ("cosinesimil", "faiss", [[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [3.0, 4.0]], [2.0, 0.0], [1.0, 0.5, 0.0, 0.8]),
    ("cosinesimil", "lucene", [[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [3.0, 4.0]], [2.0, 0.0], [1.0, 0.5, 0.0, 0.8]),
    ("l2", "faiss", [[1.0, 0.0], [0.0, 0.0], [3.0, 4.0], [1.0, 1.0]], [0.0, 0.0], [0.5, 1.0, 1 / 26, 1 / 3]),
    ("l2", "lucene", [[1.0, 0.0], [0.0, 0.0], [3.0, 4.0], [1.0, 1.0]], [0.0, 0.0], [0.5, 1.0, 1 / 26, 1 / 3]),
]


@pytest.mark.opensearch
@pytest.mark.parametrize(("space", "engine", "vectors", "query", "expected"), SCORE_CASES)
def test_scores_follow_the_documented_formula(
    opensearch_url: str,
    unique_name: UniqueName,
    space: str,
    engine: str,
    vectors: list[list[float]],
    query: list[float],
    expected: list[float],
) -> None:
    index = unique_name(f"{space}-{engine}")
    create_movie_index(opensearch_url, index, None, movies(len(vectors)), vectors, space_type=space, engine=engine)
    result = search(opensearch_url, index, knn_body(query, len(vectors), size=len(vectors)))
    got = {hit["_id"]: hit["_score"] for hit in result["hits"]["hits"]}
    want = {str(i + 1): score for i, score in enumerate(expected)}
    assert set(got) == set(want)
    for doc_id, score in want.items():
        assert got[doc_id] == pytest.approx(score, rel=1e-5, abs=1e-6), doc_id
    assert ids(result) == sorted(want, key=lambda d: -want[d])  # distinct scores: unambiguous order


@pytest.mark.opensearch
def test_source_excludes_includes_and_false(opensearch_url: str, unique_name: UniqueName) -> None:
    index = unique_name("knn")
    line_index(opensearch_url, index, n=3)
    excluded = search(opensearch_url, index, knn_body([0.0, 0.0], 1, _source={"excludes": ["embedding"]}))
    assert excluded["hits"]["hits"][0]["_source"] == {
        "movie_id": 1,
        "title": "Movie 1",
        "year": 1990,
        "genres": ["Drama"],
        "popularity": 0.0,
    }
    included = search(opensearch_url, index, knn_body([0.0, 0.0], 1, _source=["title", "year"]))
    assert included["hits"]["hits"][0]["_source"] == {"title": "Movie 1", "year": 1990}
    none = search(opensearch_url, index, knn_body([0.0, 0.0], 1, _source=False))
    assert "_source" not in none["hits"]["hits"][0]
    full = search(opensearch_url, index, knn_body([0.0, 0.0], 1))
    assert full["hits"]["hits"][0]["_source"]["embedding"] == [1.0, 0.0]


@pytest.mark.opensearch
def test_search_through_an_alias_follows_the_swap(opensearch_url: str, unique_name: UniqueName) -> None:
    alias, old, new = unique_name("alias"), unique_name("old"), unique_name("new")
    create_movie_index(opensearch_url, old, alias, movies(3), [[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]], space_type="l2")
    first = search(opensearch_url, alias, knn_body([0.0, 0.0], 1))
    assert (first["hits"]["hits"][0]["_index"], ids(first)) == (old, ["1"])
    create_movie_index(opensearch_url, new, alias, movies(3), [[3.0, 0.0], [2.0, 0.0], [1.0, 0.0]], space_type="l2")
    second = search(opensearch_url, alias, knn_body([0.0, 0.0], 1))
    assert (second["hits"]["hits"][0]["_index"], ids(second)) == (new, ["3"])
    holders = request(opensearch_url, "GET", f"/_alias/{alias}").body
    assert list(holders) == [new]


@pytest.mark.opensearch
@pytest.mark.parametrize(
    "clause",
    [
        {"k": 3},  # no vector
        {"vector": [1.0, 0.0, 0.0], "k": 3},  # wrong dimension
        {"vector": [1.0, 0.0], "k": 0},  # k < 1
        {"vector": [1.0, 0.0]},  # neither k nor a radial parameter
    ],
    ids=["no-vector", "wrong-dimension", "k-zero", "no-k"],
)
def test_malformed_knn_clause_is_a_400(opensearch_url: str, unique_name: UniqueName, clause: dict[str, Any]) -> None:
    index = unique_name("knn")
    line_index(opensearch_url, index, n=3)
    body = search(opensearch_url, index, {"query": {"knn": {"embedding": clause}}}, expect=(400,))
    assert body["status"] == 400
    assert isinstance(body["error"]["type"], str)
    assert body["error"]["root_cause"][0]["reason"]


@pytest.mark.opensearch
def test_knn_on_a_missing_index_is_a_404(opensearch_url: str, unique_name: UniqueName) -> None:
    body = search(opensearch_url, unique_name("missing"), knn_body([0.0, 0.0], 1), expect=(404,))
    assert body["error"]["type"] == "index_not_found_exception"


@pytest.mark.opensearch
def test_radial_search_by_max_distance_and_min_score(opensearch_url: str, unique_name: UniqueName) -> None:
    index = unique_name("knn")
    line_index(opensearch_url, index, n=6)
    near = {"query": {"knn": {"embedding": {"vector": [0.0, 0.0], "max_distance": 9.5}}}}  # squared l2 <= 9.5
    assert ids(search(opensearch_url, index, near)) == ["1", "2", "3"]
    good = {"query": {"knn": {"embedding": {"vector": [0.0, 0.0], "min_score": 0.1}}}}  # 1/(1+d) >= 0.1
    assert ids(search(opensearch_url, index, good)) == ["1", "2", "3"]


@pytest.mark.opensearch
def test_non_knn_requests_behave_as_usual(opensearch_url: str, unique_name: UniqueName) -> None:
    index = unique_name("plain")
    line_index(opensearch_url, index, n=5)
    assert request(opensearch_url, "GET", f"/{index}/_count").body["count"] == 5
    match = search(opensearch_url, index, {"query": {"match": {"title": "movie"}}, "size": 2})
    assert match["hits"]["total"]["value"] == 5
    assert len(match["hits"]["hits"]) == 2
    ranged = search(opensearch_url, index, {"query": {"range": {"year": {"gte": 1993}}}, "sort": [{"movie_id": "asc"}]})
    assert ids(ranged) == ["4", "5"]
    mapping = request(opensearch_url, "GET", f"/{index}/_mapping").body[index]["mappings"]
    assert mapping["properties"]["embedding"]["type"] == "knn_vector"
    missing = request(opensearch_url, "GET", f"/{index}/_doc/999", expect=(404,))
    assert missing.body["found"] is False


@pytest.mark.opensearch
def test_the_architecture_query_with_opensearch_py(opensearch_url: str, unique_name: UniqueName) -> None:
    """The documented query shape (architecture.md), through the client the recommender uses."""
    alias, index = unique_name("movies"), unique_name("movies-v1")
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    catalog = [
        Movie(i + 1, f"Movie {i + 1}", 1980 + i, ("Drama",) if i % 3 else ("Comedy", "Drama"), float(i))
        for i in range(30)
    ]
    create_movie_index(opensearch_url, index, alias, catalog, vectors)
    client = OpenSearch(hosts=[opensearch_url], http_compress=True)
    query = rng.normal(size=8).astype(np.float32)
    seen = ["1", "2", "3"]
    flt = {"bool": {"filter": [{"term": {"genres": "Comedy"}}], "must_not": [{"ids": {"values": seen}}]}}
    body = {
        "size": 5,
        "_source": {"excludes": ["embedding"]},
        "query": {"knn": {"embedding": {"vector": query.tolist(), "k": 5, "filter": flt}}},
    }
    result = client.search(index=alias, body=body)
    comedies = [i for i in range(30) if i % 3 == 0 and str(i + 1) not in seen]
    dots = {str(i + 1): float(vectors[i] @ query) for i in comedies}
    expected = sorted(dots, key=lambda d: -dots[d])[:5]
    assert ids(result) == expected
    for hit in result["hits"]["hits"]:
        dot = dots[hit["_id"]]
        assert hit["_score"] == pytest.approx(dot + 1 if dot > 0 else 1 / (1 - dot), rel=1e-4)
        assert "embedding" not in hit["_source"]
        assert hit["_index"] == index


# ------------------------------------------------------------------------------ the emulation proxy itself


def test_the_proxy_answers_only_knn_searches_itself(knn_proxy: KnnEmulationProxy) -> None:
    url = knn_proxy.url
    request(url, "PUT", "/plain", movie_index_body(2, space_type="l2"))
    bulk = request(
        url,
        "POST",
        "/_bulk?refresh=true",
        ndjson=[{"index": {"_index": "plain", "_id": "1"}}, {"movie_id": 1, "title": "A", "embedding": [1.0, 0.0]}],
    )
    assert bulk.body["errors"] is False
    assert (
        request(url, "POST", "/plain/_search", {"query": {"ids": {"values": ["1"]}}}).body["hits"]["total"]["value"]
        == 1
    )
    assert request(url, "HEAD", "/plain", expect=(200,)).status == 200
    assert request(url, "HEAD", "/nothing", expect=(404,)).status == 404
    assert knn_proxy.knn_requests == 0
    search(url, "plain", knn_body([1.0, 0.0], 1))
    search(url, "plain", knn_body([1.0, 0.0], 1), expect=(200,))
    assert knn_proxy.knn_requests == 2


def test_candidates_are_paged_not_capped(osmem: OsmemServer) -> None:
    clone = osmem.clone()
    try:
        with KnnEmulationProxy(clone.url, page_size=3) as proxy:
            line_index(proxy.url, "paged", n=10)
            result = search(proxy.url, "paged", knn_body([10.0, 0.0], 4))
            assert ids(result) == ["10", "9", "8", "7"]
    finally:
        clone.close()


def test_unsupported_companions_of_knn_are_refused_not_ignored(knn_proxy: KnnEmulationProxy) -> None:
    url = knn_proxy.url
    line_index(url, "line", n=3)
    with_aggs = search(url, "line", knn_body([0.0, 0.0], 2, aggs={"g": {"terms": {"field": "genres"}}}), expect=(400,))
    assert "aggs" in with_aggs["error"]["reason"]
    two_scorers = {
        "query": {
            "bool": {"must": [{"knn": {"embedding": {"vector": [0.0, 0.0], "k": 2}}}, {"match": {"title": "movie"}}]}
        }
    }
    assert search(url, "line", two_scorers, expect=(400,))["error"]["type"] == "unsupported_operation_exception"
    optional_knn = {
        "query": {
            "bool": {
                "should": [{"knn": {"embedding": {"vector": [0.0, 0.0], "k": 2}}}],
                "filter": [{"term": {"genres": "Drama"}}],
            }
        }
    }
    assert search(url, "line", optional_knn, expect=(400,))["error"]["type"] == "unsupported_operation_exception"
    not_vector = search(url, "line", {"query": {"knn": {"year": {"vector": [0.0], "k": 1}}}}, expect=(400,))
    assert "knn_vector" in not_vector["error"]["reason"]


def test_score_function_matches_hand_computed_values() -> None:
    docs = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 0.0]], dtype=np.float32)
    q = np.array([2.0, -1.0], dtype=np.float32)
    # dots: 0, -2.5, 0 -> innerproduct 1/(1-0)=1, 1/(1+2.5), 1
    assert knn_scores("innerproduct", q, docs) == pytest.approx([1.0, 1 / 3.5, 1.0])
    # squared l2: 1+9=10, 9+2.25=11.25, 5
    assert knn_scores("l2", q, docs) == pytest.approx([1 / 11, 1 / 12.25, 1 / 6])
    # l1: 1+3=4, 3+1.5=4.5, 3 ; linf: 3, 3, 2
    assert knn_scores("l1", q, docs) == pytest.approx([1 / 5, 1 / 5.5, 1 / 4])
    assert knn_scores("linf", q, docs) == pytest.approx([1 / 4, 1 / 4, 1 / 3])
    # cosine: 0, -2.5/(sqrt(1.25)*sqrt(5)) = -1 ; zero vector scores as cos 0
    assert knn_scores("cosinesimil", q, docs) == pytest.approx([0.5, 0.0, 0.5])


def test_stopped_proxy_refuses_then_comes_back_with_the_data(knn_proxy: KnnEmulationProxy) -> None:
    url = knn_proxy.url
    line_index(url, "line", n=3)
    client = OpenSearch(hosts=[url], max_retries=0, timeout=2)
    assert client.count(index="line")["count"] == 3  # a keep-alive connection is now open
    knn_proxy.stop()
    assert not knn_proxy.running
    with pytest.raises(opensearch_exceptions.ConnectionError):
        client.count(index="line")
    with pytest.raises(urllib.error.URLError):
        request(url, "GET", "/line/_count")
    knn_proxy.start()
    assert knn_proxy.url == url
    assert client.count(index="line")["count"] == 3
    assert ids(search(url, "line", knn_body([0.0, 0.0], 1))) == ["1"]
