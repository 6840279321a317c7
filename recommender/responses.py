"""The API's answers other than the routes' own: the JSON error shape, the CORS headers, and the
exception handlers that map errors (``recommender.errors``, Powertools' validation) to status codes.

===  ==================  =============================================================
200  -                   the answer
400  invalid_json        the body is not JSON (unsupported_event: not an API Gateway event)
404  not_found           unknown path, or ``movie_not_found`` for an unknown movie id
405  method_not_allowed  known path, other method (``Allow`` says which)
413  body_too_large      body over ``RECS_MAX_BODY_BYTES`` (64 KiB by default)
415  unsupported_media   a body that is not ``application/json``
422  validation_error    a field is missing, of the wrong type, out of range or unknown
503  index_unavailable   the vector index cannot answer (and no fallback is configured)
503  model_mismatch      the index serves another model than the user tower (and no fallback is
                         configured); the body names both (``bundle_model_version``, ``index_model_version``)
503  model_unavailable   the model bundle or the settings could not be loaded
500  internal_error      a bug; logged with a traceback
===  ==================  =============================================================

Every error body is ``{"error": code, "message": ..., "errors": [{"field", "location", "reason"}],
"request_id": ...}``. 400 (unsupported event, bad base64), 413 and 415 are answered before the
resolver (``recommender.middleware``), 405 by the routes of each path (``routes.common``), the rest
by the handlers below (``register_error_handlers``).
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from recommender.errors import CompositionError, IndexUnavailableError, ModelMismatchError, MovieNotFoundError
from recommender.observability import logger

JSON = "application/json"
CORRELATION_HEADER = "X-Correlation-Id"
CORS = CORSConfig(
    allow_origin="*",
    allow_headers=[CORRELATION_HEADER],
    expose_headers=[CORRELATION_HEADER, "Retry-After"],
    max_age=600,
)
"""Browsers on any origin may call the API (the try-it page pointed at a deployed API): it is
authorized by an API key or SigV4 in headers, never by cookies, so ``*`` shares nothing a script
could not get otherwise. Preflights (``OPTIONS``) are answered 204 without authorization, here and
by API Gateway's mock integration in front of the Lambda."""


def cors_headers(origin: str | None) -> dict[str, str]:
    """The CORS headers of an answer the resolver does not decorate itself (it adds these to the rest)."""
    if not origin:
        return {}
    return CORS.to_dict(CORS.allowed_origin(origin))


def request_id(router: APIGatewayRestResolver | APIGatewayRouter) -> str | None:
    """The API Gateway request id of the request ``router`` is answering, if it has one."""
    try:
        return str(router.current_event.request_context.request_id)
    except (AttributeError, KeyError, TypeError):
        return None


def error_body(
    code: str, message: str, errors: list[dict[str, str]] | None = None, *, request_id: str | None = None
) -> dict[str, Any]:
    return {"error": code, "message": message, "errors": errors or [], "request_id": request_id}


def error_response(
    status: int, code: str, message: str, errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None, *, request_id: str | None = None,
) -> Response[Any]:
    body = error_body(code, message, errors, request_id=request_id)
    return Response(status_code=status, content_type=JSON, body=json.dumps(body), headers=headers)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> tuple[str, str]:
    """``("body", "history", 3, "movie_id")`` -> ``("body", "history[3].movie_id")``."""
    parts = list(loc)
    location = str(parts.pop(0)) if parts and parts[0] in ("body", "query", "path", "header") else "body"
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return location, out or "(body)"


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    """Answer each error of ``app``'s routes (and unknown paths) with its status and the error shape."""

    def answer(
        status: int, code: str, message: str, errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response[Any]:
        return error_response(status, code, message, errors, headers, request_id=request_id(app))

    @app.exception_handler(RequestUnsupportedContentType)
    def on_unsupported_content_type(exc: RequestUnsupportedContentType) -> Response[Any]:
        # a JSON flavour the middleware lets through (``application/x+json``) that Powertools cannot parse
        content_type = str(app.current_event.headers.get("content-type") or "")
        return answer(
            415, "unsupported_media_type", f"The body must be application/json, not {content_type}.",
            [{"field": "Content-Type", "location": "header", "reason": f"{content_type} is not supported"}],
        )

    @app.exception_handler(RequestValidationError)
    def on_validation_error(exc: RequestValidationError) -> Response[Any]:
        raw = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in raw):
            reason = next(str(e.get("ctx", {}).get("error", "")) for e in raw if e.get("type") == "json_invalid")
            detail = [{"field": "(body)", "location": "body", "reason": reason}]
            return answer(400, "invalid_json", "The body is not valid JSON.", detail)
        errors = []
        for e in raw:
            location, field = _field_path(tuple(e.get("loc", ())))
            errors.append({"field": field, "location": location, "reason": str(e.get("msg", "invalid"))})
        names = ", ".join(dict.fromkeys(e["field"] for e in errors))
        return answer(422, "validation_error", f"Invalid request: {names}.", errors)

    @app.exception_handler(MovieNotFoundError)
    def on_movie_not_found(exc: MovieNotFoundError) -> Response[Any]:
        detail = [{"field": "movie_id", "location": "path", "reason": "not in the catalog"}]
        return answer(404, "movie_not_found", str(exc), detail)

    @app.exception_handler(IndexUnavailableError)
    def on_index_unavailable(exc: IndexUnavailableError) -> Response[Any]:
        logger.error("vector index unavailable", extra={"reason": str(exc)})
        return answer(
            503, "index_unavailable", "The movie index is not answering; try again shortly.",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(ModelMismatchError)
    def on_model_mismatch(exc: ModelMismatchError) -> Response[Any]:
        logger.error("user tower and index of different models", extra={"reason": str(exc)})
        body = error_body(
            "model_mismatch",
            f"The movie index serves model {exc.index}, this service's user tower is model {exc.serving}; "
            "recommendations would mix them, so none are served. Try again shortly.",
            request_id=request_id(app),
        )
        body.update(bundle_model_version=exc.serving, index_model_version=exc.index)
        return Response(status_code=503, content_type=JSON, body=json.dumps(body), headers={"Retry-After": "10"})

    @app.exception_handler(CompositionError)
    def on_composition_error(exc: CompositionError) -> Response[Any]:
        logger.error("the service cannot be built", extra={"reason": str(exc)})
        return answer(
            503, "model_unavailable", "The model could not be loaded; the operators have been told (see the logs).",
            headers={"Retry-After": "10"},
        )

    @app.exception_handler(NotFoundError)
    def on_not_found(exc: NotFoundError) -> Response[Any]:
        # a known path with another method never gets here: each path answers its other methods 405
        event = app.current_event
        return answer(404, "not_found", f"No route {event.http_method} {event.path}.")

    @app.exception_handler(Exception)
    def on_unexpected(exc: Exception) -> Response[Any]:
        logger.exception("unhandled error")
        return answer(500, "internal_error", "An unexpected error occurred; it has been logged.")
