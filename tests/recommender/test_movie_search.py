"""GET /movies/search through the Lambda handler: answers, limits and errors like the other routes,
caching, and the bundle's catalog when OpenSearch is down."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from core.bundle import Bundle
from core.title_search import MAX_QUERY_CHARS, title_terms
from recommender import composition
from recommender.handler import lambda_handler
from tests.recommender.conftest import load_event

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


def search_event(query: dict[str, str] | None, **changes: Any) -> dict[str, Any]:
    return load_event(
        "get_similar", path="/movies/search", resource="/movies/search", pathParameters=None, query=query, **changes
    )


def expected(bundle: Bundle, text: str, limit: int) -> list[int]:
    """The rule of core.title_search by brute force over the bundle's catalog."""
    *whole, last = title_terms(text)
    ranked = sorted(bundle.catalog, key=lambda m: (-m.popularity, m.movie_id))
    return [
        m.movie_id for m in ranked
        if set(whole) <= set(title_terms(m.title)) and any(t.startswith(last) for t in title_terms(m.title))
    ][:limit]


def test_search_finds_titles_as_they_are_typed(invoke: Invoke, bundle: Bundle) -> None:
    # GIVEN the synthetic catalog ("The <word> <word> <n>") WHEN a title is half typed
    response = invoke(search_event({"q": "The st", "limit": "5"}))
    # THEN the most popular matches come back, whole, with the query echoed
    assert response["statusCode"] == 200
    body = response["json"]
    want = expected(bundle, "the st", 5)
    assert len(want) == 5
    assert [m["movie_id"] for m in body["items"]] == want
    assert body["query"] == "The st" and body["model_version"] == "synthetic-test"
    assert body["cached"] is False and body["fallback"] is None
    first = next(m for m in bundle.catalog if m.movie_id == want[0])
    assert body["items"][0] == {
        "movie_id": first.movie_id, "title": first.title, "year": first.year, "genres": list(first.genres),
        "popularity": first.popularity,
    }
    # AND the same search again is served from the cache (the terms are the key: case and spaces do not matter)
    again = invoke(search_event({"q": "the  ST", "limit": "5"}))["json"]
    assert again["cached"] is True and again["items"] == body["items"]


def test_limit_defaults_to_10_and_words_without_letters_match_nothing(invoke: Invoke, bundle: Bundle) -> None:
    body = invoke(search_event({"q": "the"}))["json"]
    assert [m["movie_id"] for m in body["items"]] == expected(bundle, "the", 10)
    for blank in ("   ", "!?", "-"):
        response = invoke(search_event({"q": blank}))
        assert response["statusCode"] == 200 and response["json"]["items"] == []
    assert invoke(search_event({"q": "qwertyuiop"}))["json"]["items"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (None, "q"),
        ({"limit": "3"}, "q"),
        ({"q": ""}, "q"),
        ({"q": "x" * (MAX_QUERY_CHARS + 1)}, "q"),
        ({"q": "star", "limit": "0"}, "limit"),
        ({"q": "star", "limit": "101"}, "limit"),
        ({"q": "star", "limit": "ten"}, "limit"),
        ({"q": "star", "k": "3"}, "k"),
    ],
)
def test_bad_parameters_are_a_422_naming_the_field(invoke: Invoke, query: dict[str, str] | None, field: str) -> None:
    response = invoke(search_event(query))
    assert response["statusCode"] == 422
    body = response["json"]
    assert body["error"] == "validation_error"
    assert [(e["field"], e["location"]) for e in body["errors"]] == [(field, "query")]


def test_other_methods_are_a_405(invoke: Invoke) -> None:
    response = invoke(search_event({"q": "star"}, httpMethod="POST", body={}))
    assert response["statusCode"] == 405
    assert response["multiValueHeaders"]["Allow"] == ["GET"]


def test_opensearch_down_searches_the_bundle_catalog(
    configure_service: Callable[..., composition.Container], unreachable_url: str, bundle: Bundle
) -> None:
    # GIVEN the API on an unreachable OpenSearch with the (default) fallback
    configure_service(opensearch_url=unreachable_url, opensearch_max_retries=0)
    # WHEN a title is searched THEN the bundle's catalog answers, flagged, never cached
    for _ in range(2):
        response = lambda_handler(search_event({"q": "dark", "limit": "4"}), None)
        body = json.loads(response["body"])
        assert response["statusCode"] == 200
        assert body["fallback"] == "bundle" and body["cached"] is False
        assert [m["movie_id"] for m in body["items"]] == expected(bundle, "dark", 4)


def test_opensearch_down_without_a_fallback_is_a_503(
    configure_service: Callable[..., composition.Container], unreachable_url: str
) -> None:
    configure_service(opensearch_url=unreachable_url, opensearch_max_retries=0, index_fallback="none")
    response = lambda_handler(search_event({"q": "dark"}), None)
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["error"] == "index_unavailable"


def test_the_openapi_document_describes_it(invoke: Invoke) -> None:
    document = invoke(load_event("get_openapi"))["json"]
    operation = document["paths"]["/movies/search"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["q"]["in"] == "query" and params["q"]["required"] is True
    assert params["q"]["schema"]["minLength"] == 1 and params["q"]["schema"]["maxLength"] == MAX_QUERY_CHARS
    assert params["limit"]["schema"]["minimum"] == 1 and params["limit"]["schema"]["maximum"] == 100
    assert params["limit"]["required"] is False
    for status in ("422", "503"):
        assert operation["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorResponse"
        )
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/MovieSearchResponse"
    )
