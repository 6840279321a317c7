"""Functional tests: stored API Gateway REST events through the Lambda handler, embedded defaults.

Each test reads GIVEN (the service on a synthetic bundle and an event), WHEN (the handler runs),
THEN (status and body).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from core.bundle import Bundle
from recommender.ports import Filters
from recommender.settings import MAX_HISTORY_ITEMS
from tests.recommender.conftest import load_event

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


def header(response: dict[str, Any], name: str) -> str | None:
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return str(values[-1])
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def brute_force(
    bundle: Bundle, history: list[tuple[int, float | None]], k: int, flt: Filters, seen: set[int]
) -> list[int]:
    vector = bundle.user_tower.encode(history)
    scores = bundle.movie_vectors @ vector
    rows = [i for i, m in enumerate(bundle.catalog) if flt.matches(m) and m.movie_id not in seen]
    rows.sort(key=lambda i: -float(scores[i]))
    return [bundle.catalog[i].movie_id for i in rows[:k]]


def test_recommendations_for_a_history(invoke: Invoke, bundle: Bundle) -> None:
    # GIVEN a person who watched movies 12, 40 and 77
    event = load_event("post_recommendations")
    # WHEN they ask for 5 recommendations
    response = invoke(event)
    # THEN they get the exact top 5 of the served model, without what they saw
    assert response["statusCode"] == 200, response["json"]
    body = response["json"]
    assert body["model_version"] == "synthetic-test"
    assert body["strategy"] == "personalized"
    assert body["cached"] is False
    assert body["fallback"] is None
    assert body["history_used"] == 3
    assert body["ignored_movie_ids"] == []
    got = [item["movie_id"] for item in body["items"]]
    assert got == brute_force(bundle, [(12, 4.5), (40, 3.0), (77, None)], 5, Filters(), {12, 40, 77})
    assert set(body["items"][0]) == {"movie_id", "title", "year", "genres", "score"}
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert header(response, "Content-Type") == "application/json"
    assert header(response, "X-Correlation-Id") == event["requestContext"]["requestId"]


def test_the_same_request_again_is_served_from_the_cache(invoke: Invoke) -> None:
    # GIVEN an answered request
    first = invoke(load_event("post_recommendations"))["json"]
    # WHEN it comes again
    second = invoke(load_event("post_recommendations"))["json"]
    # THEN the same items come from the cache
    assert second["cached"] is True
    assert second["items"] == first["items"]


def test_empty_history_gets_popular_movies_under_the_filters(invoke: Invoke, bundle: Bundle) -> None:
    # GIVEN nobody we know, with genre and year filters
    event = load_event("post_recommendations_popular_filtered")
    # WHEN recommendations are asked for
    body = invoke(event)["json"]
    # THEN the most popular movies that pass the filters come back
    flt = Filters(genres_any=("Drama", "Comedy"), genres_none=("Horror",), year_min=1960, year_max=2010)
    expected = sorted((m for m in bundle.catalog if flt.matches(m)), key=lambda m: (-m.popularity, m.movie_id))
    assert body["strategy"] == "popular"
    assert [i["movie_id"] for i in body["items"]] == [m.movie_id for m in expected[:5]]
    assert [i["score"] for i in body["items"]] == [m.popularity for m in expected[:5]]


def test_unknown_history_ids_are_ignored_and_reported(invoke: Invoke, bundle: Bundle) -> None:
    # GIVEN a history with two movie ids the catalog does not have
    event = load_event("post_recommendations_unknown_ids")
    # WHEN recommendations are asked for
    response = invoke(event)
    # THEN they are answered from the known movie alone, and the unknown ids are reported
    assert response["statusCode"] == 200
    body = response["json"]
    assert body["ignored_movie_ids"] == [888888, 999999]
    assert body["history_used"] == 1
    assert [i["movie_id"] for i in body["items"]] == brute_force(bundle, [(12, 4.0)], 3, Filters(), {12})


def test_exclude_seen_keeps_k_items_and_can_be_turned_off(invoke: Invoke) -> None:
    # GIVEN a long history of 60 movies, most recent last
    history = [{"movie_id": i, "rating": 4.0} for i in range(1, 61)]
    # WHEN 50 recommendations are asked for with and without exclude_seen
    excluded = invoke(load_event("post_recommendations", body={"history": history, "k": 50}))["json"]
    kept = invoke(load_event("post_recommendations", body={"history": history, "k": 50, "exclude_seen": False}))["json"]
    # THEN the default leaves every seen movie out and still returns 50; the other may include them
    seen = set(range(1, 61))
    assert len(excluded["items"]) == 50
    assert not {i["movie_id"] for i in excluded["items"]} & seen
    assert {i["movie_id"] for i in kept["items"]} & seen
    # and the model read only its history length (20) of the 60
    assert excluded["history_used"] == 20


def test_timestamps_order_the_history(invoke: Invoke) -> None:
    # GIVEN the same history sent in two orders, each entry with a timestamp
    entries = [{"movie_id": m, "rating": 4.0, "timestamp": 1000 + n} for n, m in enumerate(range(100, 130))]
    forward = invoke(load_event("post_recommendations", body={"history": entries, "k": 5}))["json"]
    backward = invoke(load_event("post_recommendations", body={"history": entries[::-1], "k": 5}))["json"]
    # THEN the answers are the same (the model reads the 20 most recent by timestamp)
    assert forward["items"] == backward["items"]


def test_invalid_fields_are_a_422_naming_each_field(invoke: Invoke) -> None:
    # GIVEN a request with k out of range, a rating above 5 and an unknown field
    event = load_event("post_recommendations_invalid")
    # WHEN it arrives
    response = invoke(event)
    # THEN a 422 names every offending field and why
    assert response["statusCode"] == 422
    body = response["json"]
    assert body["error"] == "validation_error"
    fields = {e["field"]: e["reason"] for e in body["errors"]}
    assert set(fields) == {"history[0].rating", "k", "user"}
    assert "less than or equal to 100" in fields["k"]
    assert "not permitted" in fields["user"].lower()
    assert body["request_id"] == event["requestContext"]["requestId"]


def test_types_are_strict(invoke: Invoke) -> None:
    body = {"history": [{"movie_id": "12"}], "k": 5, "exclude_seen": "yes"}
    response = invoke(load_event("post_recommendations", body=body))
    assert response["statusCode"] == 422
    assert {e["field"] for e in response["json"]["errors"]} == {"history[0].movie_id", "exclude_seen"}


def test_year_bounds_out_of_order_are_rejected(invoke: Invoke) -> None:
    body = {"history": [], "filters": {"year_min": 2010, "year_max": 1990}}
    response = invoke(load_event("post_recommendations", body=body))
    assert response["statusCode"] == 422
    assert response["json"]["errors"][0]["field"] == "filters.year_max"


def test_too_long_a_history_is_rejected(invoke: Invoke) -> None:
    body = {"history": [{"movie_id": 1}] * (MAX_HISTORY_ITEMS + 1)}
    response = invoke(load_event("post_recommendations", body=body))
    assert response["statusCode"] == 422
    assert response["json"]["errors"][0]["field"] == "history"


def test_query_parameters_on_post_are_rejected_too(invoke: Invoke) -> None:
    response = invoke(load_event("post_recommendations", query={"k": "5"}))
    assert response["statusCode"] == 422
    assert response["json"]["errors"] == [{"field": "k", "location": "query", "reason": "Unknown query parameter"}]


def test_a_body_over_the_limit_is_a_413(invoke: Invoke) -> None:
    body = '{"history": [], "k": 5, "padding": "' + "x" * 70_000 + '"}'
    response = invoke(load_event("post_recommendations", body=body))
    assert response["statusCode"] == 413
    assert response["json"]["error"] == "body_too_large"


def test_malformed_json_is_a_400(invoke: Invoke) -> None:
    response = invoke(load_event("post_recommendations_malformed"))
    assert response["statusCode"] == 400
    assert response["json"]["error"] == "invalid_json"


def test_a_missing_body_is_a_422_and_a_non_json_body_a_415(invoke: Invoke) -> None:
    assert invoke(load_event("post_recommendations", body=None))["statusCode"] == 422
    event = load_event("post_recommendations")
    event["headers"]["Content-Type"] = "text/plain"
    response = invoke(event)
    assert response["statusCode"] == 415
    assert response["json"]["errors"][0]["field"] == "Content-Type"


@pytest.mark.parametrize("body", ['{"history": [], "k": 3}', "[1, 2]"])
def test_a_json_flavour_the_resolver_cannot_parse_is_a_415_not_a_500(invoke: Invoke, body: str) -> None:
    event = load_event("post_recommendations", body=body)
    event["headers"]["Content-Type"] = "application/vnd.api+json"
    response = invoke(event)
    assert (response["statusCode"], response["json"]["error"]) == (415, "unsupported_media_type")
    assert response["json"]["errors"][0]["field"] == "Content-Type"


def test_one_movie(invoke: Invoke, bundle: Bundle) -> None:
    # GIVEN movie 12 of the catalog WHEN it is asked for THEN its catalog entry comes back
    response = invoke(load_event("get_movie"))
    assert response["statusCode"] == 200
    movie = next(m for m in bundle.catalog if m.movie_id == 12)
    assert response["json"] == {
        "movie_id": 12, "title": movie.title, "year": movie.year, "genres": list(movie.genres),
        "popularity": movie.popularity,
    }


def test_an_unknown_movie_in_the_path_is_a_404(invoke: Invoke) -> None:
    response = invoke(load_event("get_movie_unknown"))
    assert response["statusCode"] == 404
    assert response["json"]["error"] == "movie_not_found"
    assert response["json"]["errors"][0]["field"] == "movie_id"
    similar = load_event("get_similar", path="/movies/999999/similar")
    assert invoke(similar)["statusCode"] == 404


def test_a_non_numeric_movie_id_is_a_422(invoke: Invoke) -> None:
    response = invoke(load_event("get_movie", path="/movies/twelve"))
    assert response["statusCode"] == 422
    assert response["json"]["errors"][0] == {
        "field": "movie_id", "location": "path", "reason": response["json"]["errors"][0]["reason"]
    }


def test_similar_movies(invoke: Invoke, bundle: Bundle) -> None:
    # GIVEN movie 12 WHEN 4 similar movies are asked for
    body = invoke(load_event("get_similar"))["json"]
    # THEN the nearest by item vector (popularity column left out) come back, without movie 12
    vectors = bundle.movie_vectors.copy()
    row = next(i for i, m in enumerate(bundle.catalog) if m.movie_id == 12)
    query = vectors[row].copy()
    query[-1] = 0.0
    scores = vectors @ query
    order = [int(i) for i in np.argsort(-scores) if bundle.catalog[int(i)].movie_id != 12][:4]
    assert body["movie"]["movie_id"] == 12
    assert [i["movie_id"] for i in body["items"]] == [bundle.catalog[i].movie_id for i in order]
    assert body["items"][0]["score"] <= 1.0 + 1e-5  # a cosine: the vectors' tower part is unit length


def test_similar_rejects_a_bad_k_and_unknown_query_parameters(invoke: Invoke) -> None:
    bad_k = invoke(load_event("get_similar", query={"k": "0"}))
    assert bad_k["statusCode"] == 422
    assert bad_k["json"]["errors"][0]["field"] == "k"
    assert bad_k["json"]["errors"][0]["location"] == "query"
    unknown = invoke(load_event("get_similar", query={"k": "3", "limit": "9"}))
    assert unknown["statusCode"] == 422
    assert unknown["json"]["errors"][0]["field"] == "limit"


def test_health_reports_the_model_and_each_backend(invoke: Invoke) -> None:
    response = invoke(load_event("get_health"))
    assert response["statusCode"] == 200
    body = response["json"]
    assert body["status"] == "ok"
    assert body["model_version"] == "synthetic-test"
    assert body["history_length"] == 20
    assert body["index"]["kind"] == "numpy" and body["index"]["ok"] is True
    assert body["index"]["info"]["movies"] == 300
    assert body["cache"]["kind"] == "memory" and body["cache"]["ok"] is True


def test_unknown_routes_and_methods(invoke: Invoke) -> None:
    response = invoke(load_event("get_unknown_route"))
    assert response["statusCode"] == 404
    assert response["json"]["error"] == "not_found"
    wrong_method = invoke(load_event("get_health", httpMethod="DELETE"))
    assert wrong_method["statusCode"] == 405
    assert header(wrong_method, "Allow") == "GET"


def test_events_that_are_not_api_requests_get_a_400(invoke: Invoke) -> None:
    for event in ({}, {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}):
        response = invoke(event)
        assert response["statusCode"] == 400
        assert response["json"]["error"] == "unsupported_event"


def test_the_client_correlation_id_is_kept_when_it_is_sane(invoke: Invoke) -> None:
    event = load_event("get_health")
    event["headers"]["X-Correlation-Id"] = "order-42.retry-1"
    assert header(invoke(event), "X-Correlation-Id") == "order-42.retry-1"
    event["headers"]["X-Correlation-Id"] = "bad id with spaces\n"
    assert header(invoke(event), "X-Correlation-Id") == event["requestContext"]["requestId"]


def test_locally_nothing_is_printed_to_stdout(invoke: Invoke, capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    invoke(load_event("post_recommendations"))
    captured = capfd.readouterr()
    assert captured.out == ""
    log = json.loads(captured.err.strip().splitlines()[-1])
    assert log["message"] == "request" and log["status"] == 200
    assert log["correlation_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


def test_with_metrics_on_each_invocation_emits_one_emf_document(
    configure_service: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from recommender.handler import lambda_handler

    configure_service(metrics_enabled=True, metrics_namespace="RecsTest")
    capsys.readouterr()
    lambda_handler(load_event("post_recommendations"), None)
    lambda_handler(load_event("post_recommendations"), None)
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(documents) == 2
    first, second = documents
    assert first["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "RecsTest"
    assert {"RequestLatency", "KnnTime", "TowerTime", "CacheMisses", "Requests"} <= set(first)
    assert "CacheHits" in second and "KnnTime" not in second
