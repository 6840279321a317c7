"""What the routers share: response documentation, the unknown-query rule, the 405 routes, hits as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.event_handler.util import extract_origin_header
from pydantic import BaseModel

from recommender.api_models import ErrorResponse
from recommender.ports import Hit
from recommender.responses import JSON, cors_headers, error_response, request_id

METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
"""The methods API Gateway REST passes to the function (its ``ANY``) but ``OPTIONS``: the resolver
answers preflights itself (204), on every path."""


def doc(description: str, model: type[BaseModel] = ErrorResponse) -> OpenAPIResponse:
    """A documented response (``responses=`` of a route) with its JSON model."""
    return {"description": description, "content": {JSON: {"model": model}}}


def reject_unknown_query(router: APIGatewayRouter, allowed: set[str]) -> None:
    """422 naming each query parameter the route does not take."""
    event = router.current_event
    names = set(event.query_string_parameters or {}) | set(event.multi_value_query_string_parameters or {})
    unknown = sorted(names - allowed)
    if unknown:
        raise RequestValidationError(
            [{"type": "extra_forbidden", "loc": ("query", name), "msg": "Unknown query parameter"} for name in unknown]
        )


def method_not_allowed(router: APIGatewayRouter, path: str, allowed: Sequence[str]) -> None:
    """Answer every other method on ``path`` 405 ``method_not_allowed``, with ``Allow: <allowed>``.

    The routes stay out of the OpenAPI document and out of the CORS preflight's
    ``Access-Control-Allow-Methods`` (``cors=False``: the resolver lists the methods of its CORS
    routes there), so their answers get the CORS headers here, as the resolver gives its own.
    """
    allow = ", ".join(allowed)

    def not_allowed(**_path_parameters: str) -> Response[Any]:
        event = router.current_event
        return error_response(
            405, "method_not_allowed", f"{event.http_method} is not allowed on {event.path}; use {allow}.",
            headers={"Allow": allow, **cors_headers(extract_origin_header(event.resolved_headers_field))},
            request_id=request_id(router),
        )

    others = [method for method in METHODS if method not in allowed]
    router.route(path, others, cors=False, include_in_schema=False, enable_validation=False)(not_allowed)


def hits_to_json(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    return [
        {
            "movie_id": h.movie.movie_id,
            "title": h.movie.title,
            "year": h.movie.year,
            "genres": list(h.movie.genres),
            "score": round(h.score, 6),
        }
        for h in hits
    ]
