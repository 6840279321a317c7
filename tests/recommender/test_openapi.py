"""The OpenAPI document served at /openapi.json: valid OpenAPI 3.1, generated from the models the
handler validates with, and describing the errors the handler returns."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from recommender.handler import app, openapi_document
from recommender.settings import MAX_HISTORY_ITEMS, MAX_K
from tests.recommender.conftest import load_event


@pytest.fixture
def document(invoke: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    response = invoke(load_event("get_openapi"))
    assert response["statusCode"] == 200
    body: dict[str, Any] = response["json"]
    return body


def component(document: dict[str, Any], name: str) -> dict[str, Any]:
    """A schema from ``components`` with its references inlined (for jsonschema)."""
    schemas = document["components"]["schemas"]
    return {**schemas[name], "components": document["components"]}


def test_the_document_is_valid_openapi_3(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Movie recommendations"


def test_it_lists_every_route_and_only_those(document: dict[str, Any]) -> None:
    methods = {path: set(ops) for path, ops in document["paths"].items()}
    assert methods == {
        "/recommendations": {"post"},
        "/movies/{movie_id}": {"get"},
        "/movies/{movie_id}/similar": {"get"},
        "/movies/search": {"get"},
        "/health": {"get"},
    }


def test_the_request_schema_carries_the_limits_and_the_unknown_field_rule(document: dict[str, Any]) -> None:
    request = document["components"]["schemas"]["RecommendationRequest"]
    assert request["additionalProperties"] is False
    assert request["properties"]["k"]["minimum"] == 1
    assert request["properties"]["k"]["maximum"] == MAX_K
    assert request["properties"]["history"]["maxItems"] == MAX_HISTORY_ITEMS
    entry = document["components"]["schemas"]["HistoryEntry"]
    assert entry["additionalProperties"] is False
    assert entry["required"] == ["movie_id"]
    body = document["paths"]["/recommendations"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/RecommendationRequest")


def test_error_responses_use_the_error_schema(document: dict[str, Any]) -> None:
    post = document["paths"]["/recommendations"]["post"]["responses"]
    for status in ("400", "413", "415", "422", "503"):
        assert post[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse"), status
    similar = document["paths"]["/movies/{movie_id}/similar"]["get"]
    assert {p["name"]: p["in"] for p in similar["parameters"]} == {"movie_id": "path", "k": "query"}
    assert similar["responses"]["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")


def test_real_answers_validate_against_the_documented_schemas(
    document: dict[str, Any], invoke: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    # GIVEN the documented schemas WHEN the handler answers THEN each body fits its schema
    cases = [
        ("post_recommendations", "RecommendationResponse"),
        ("post_recommendations_invalid", "ErrorResponse"),
        ("get_similar", "SimilarResponse"),
        ("get_movie", "MovieResponse"),
        ("get_movie_unknown", "ErrorResponse"),
        ("get_health", "HealthResponse"),
    ]
    for event, schema in cases:
        jsonschema.validate(invoke(load_event(event))["json"], component(document, schema))


def test_the_served_document_is_the_generated_one(document: dict[str, Any]) -> None:
    assert document == json.loads(openapi_document())
    assert document == json.loads(app.get_openapi_json_schema(
        title=document["info"]["title"], version=document["info"]["version"],
        description=document["info"]["description"],
    ))
