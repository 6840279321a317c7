"""The Lambda handler: API Gateway REST proxy events in, JSON responses out.

Entry point: ``recommender.handler.lambda_handler``. It maps HTTP to the service and errors to
status codes; the work happens in ``recommender.service`` and the service is built on first use
by ``recommender.composition`` (nothing heavy happens at import: the resolver, the routes and the
pydantic models are cheap definitions).

Status codes:

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
"request_id": ...}``.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

from core.title_search import MAX_QUERY_CHARS
from recommender import composition
from recommender.api_models import (
    ErrorResponse,
    HealthResponse,
    LikedMovie,
    MovieResponse,
    MovieSearchResponse,
    RankedMovie,
    RecommendationRequest,
    RecommendationResponse,
    RecommendedMovie,
    SimilarResponse,
)
from recommender.errors import CompositionError, IndexUnavailableError, ModelMismatchError, MovieNotFoundError
from recommender.observability import logger
from recommender.ports import Filters
from recommender.service import HistoryItem, RecommendationQuery, hits_to_json
from recommender.settings import MAX_BODY_BYTES, MAX_K

API_TITLE = "Movie recommendations"
API_VERSION = "1.0.0"
API_DESCRIPTION = (
    "Recommendations from a two-tower model: the person's recent activity goes through the user "
    "tower (numpy) and a k-NN search over the movie vectors, with filters inside the search."
)
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
_CORRELATION_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ThreadSafeRestResolver(APIGatewayRestResolver):
    """``APIGatewayRestResolver`` whose per-request state is thread-local.

    Powertools keeps the current event on the class and the route context on the instance, which
    is fine in Lambda (one request per process at a time) but not in the local server, which
    calls the same handler from several threads.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._state = threading.local()
        super().__init__(**kwargs)

    @property
    def current_event(self) -> Any:  # type: ignore[override]
        return self._state.event

    @property
    def lambda_context(self) -> Any:  # type: ignore[override]
        return self._state.lambda_context

    @property
    def context(self) -> dict[str, Any]:
        ctx = getattr(self._state, "context", None)
        if ctx is None:
            ctx = self._state.context = {}
        return ctx

    @context.setter
    def context(self, value: dict[str, Any]) -> None:
        self._state.context = value

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        self._state.event = self._to_proxy_event(dict(event))
        self._state.lambda_context = context
        return super().resolve(event, context)


app = ThreadSafeRestResolver(enable_validation=True, cors=CORS)


def _doc(description: str, model: type[BaseModel] = ErrorResponse) -> OpenAPIResponse:
    return {"description": description, "content": {JSON: {"model": model}}}


def _request_id() -> str | None:
    try:
        return str(app.current_event.request_context.request_id)
    except (AttributeError, KeyError, TypeError):
        return None


def error_body(code: str, message: str, errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"error": code, "message": message, "errors": errors or [], "request_id": _request_id()}


def error_response(
    status: int, code: str, message: str, errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    return Response(
        status_code=status, content_type=JSON, body=json.dumps(error_body(code, message, errors)), headers=headers
    )


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


# -- routes -----------------------------------------------------------------------------------

@app.post(
    "/recommendations",
    summary="Recommend movies for a history",
    description=(
        "The history goes through the user tower and a k-NN search over the movie vectors; filters and "
        "(with exclude_seen) the seen movies are applied inside the search, so the list still has `k` "
        "items when that many qualify. An empty history gets popular movies under the same filters. "
        "History movie ids unknown to the model and the catalog are ignored and listed in "
        "`ignored_movie_ids`. Unknown fields are rejected. With `explain`, each item names the liked "
        "history movies most similar to it (`because`)."
    ),
    tags=["recommendations"],
    responses={
        200: _doc("Ranked movies", RecommendationResponse),
        400: _doc("The body is not JSON"),
        413: _doc("The body is too large"),
        415: _doc("The body is not application/json"),
        422: _doc("A field is invalid, out of range or unknown; `errors` names it"),
        503: _doc("The vector index or the model is unavailable"),
    },
)
def post_recommendations(body: RecommendationRequest) -> RecommendationResponse:
    _reject_unknown_query(set())
    container = composition.get_container()
    query = RecommendationQuery(
        history=[HistoryItem(h.movie_id, h.rating, h.timestamp) for h in body.history],
        k=body.k,
        exclude_seen=body.exclude_seen,
        filters=Filters(
            genres_any=tuple(body.filters.genres_any),
            genres_none=tuple(body.filters.genres_none),
            year_min=body.filters.year_min,
            year_max=body.filters.year_max,
        ),
    )
    with container.tracing.span("## recommend"):
        result = container.service.recommend(query)
        container.tracing.annotate("cached", result.cached)  # annotations belong to a subsegment
    because: dict[int, list[tuple[int, float]]] | None = None
    if body.explain:
        because = {}
        if result.fallback is None:
            try:
                with container.tracing.span("## explain"):
                    because = container.service.explain(query.history, result.items)
            except IndexUnavailableError as exc:
                logger.warning("recommendations without explanations", extra={"reason": str(exc)})
    items = [
        RecommendedMovie(
            **item,
            because=None if because is None else [
                LikedMovie(movie_id=i, similarity=round(sim, 6)) for i, sim in because.get(item["movie_id"], [])
            ],
        )
        for item in hits_to_json(result.items)
    ]
    return RecommendationResponse(
        model_version=result.model_version,
        items=items,
        cached=result.cached,
        strategy=result.strategy,  # type: ignore[arg-type]
        fallback=result.fallback,  # type: ignore[arg-type]
        ignored_movie_ids=result.ignored_movie_ids,
        history_used=result.history_used,
    )


def _reject_unknown_query(allowed: set[str]) -> None:
    event = app.current_event
    names = set(event.query_string_parameters or {}) | set(event.multi_value_query_string_parameters or {})
    unknown = sorted(names - allowed)
    if unknown:
        raise RequestValidationError(
            [{"type": "extra_forbidden", "loc": ("query", name), "msg": "Unknown query parameter"} for name in unknown]
        )


@app.get(
    "/movies/search",
    summary="Find movies by title, as you type",
    description=(
        "Movies whose title holds every term of `q`, the last one as a prefix (`star w` finds Star Wars), most "
        "popular first. Terms are cut like OpenSearch's standard analyzer: Unicode words, lower case, accents "
        "kept. A `q` without letters or digits (blank) matches nothing. When the index cannot answer, the model "
        "bundle's catalog is searched (`fallback: bundle`)."
    ),
    tags=["movies"],
    responses={
        200: _doc("Matching movies, most popular first", MovieSearchResponse),
        422: _doc("`q` is missing, empty or too long, `limit` is out of range, or a parameter is unknown"),
        503: _doc("The vector index or the model is unavailable"),
    },
)
def search_movies(
    q: Annotated[
        str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="Words of the title; the last may be cut.")
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_K, description="How many movies to return")] = 10,
) -> MovieSearchResponse:
    _reject_unknown_query({"q", "limit"})
    container = composition.get_container()
    with container.tracing.span("## search"):
        result = container.service.search_movies(q, limit)
    return MovieSearchResponse(
        model_version=result.model_version,
        query=q,
        items=[
            MovieResponse(movie_id=m.movie_id, title=m.title, year=m.year, genres=list(m.genres),
                          popularity=m.popularity)
            for m in result.items
        ],
        cached=result.cached,
        fallback=result.fallback,  # type: ignore[arg-type]
    )


@app.get(
    "/movies/<movie_id>",
    summary="One movie of the catalog",
    tags=["movies"],
    responses={
        200: _doc("The movie", MovieResponse),
        404: _doc("No such movie"),
        422: _doc("The movie id is not a positive integer"),
        503: _doc("The vector index or the model is unavailable"),
    },
)
def get_movie(movie_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> MovieResponse:
    _reject_unknown_query(set())
    movie = composition.get_container().service.movie(movie_id)
    return MovieResponse(
        movie_id=movie.movie_id, title=movie.title, year=movie.year, genres=list(movie.genres),
        popularity=movie.popularity,
    )


@app.get(
    "/movies/<movie_id>/similar",
    summary="Movies similar to one movie",
    description="Nearest movies by item vector (content and collaborative part; popularity left out).",
    tags=["movies"],
    responses={
        200: _doc("Similar movies, most similar first", SimilarResponse),
        404: _doc("No such movie"),
        422: _doc("The movie id or k is invalid"),
        503: _doc("The vector index or the model is unavailable"),
    },
)
def get_similar(
    movie_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many movies to return")] = 10,
) -> SimilarResponse:
    _reject_unknown_query({"k"})
    container = composition.get_container()
    with container.tracing.span("## similar"):
        result = container.service.similar(movie_id, k)
    m = result.movie
    return SimilarResponse(
        model_version=result.model_version,
        movie={"movie_id": m.movie_id, "title": m.title, "year": m.year, "genres": list(m.genres)},  # type: ignore[arg-type]
        items=[RankedMovie(**item) for item in hits_to_json(result.items)],
        cached=result.cached,
    )


@app.get(
    "/health",
    summary="Model version and whether each backend answers",
    description="200 when recommendations can be served (`ok`, or `degraded` with the cache or index down but a "
    "fallback in place); 503 when they cannot.",
    tags=["operations"],
    responses={
        200: _doc("Serving", HealthResponse),
        503: _doc("Not serving", HealthResponse),
    },
)
def get_health() -> Response[Any]:
    try:
        container = composition.get_container()
    except CompositionError as exc:
        logger.error("health: the service cannot be built", extra={"reason": str(exc)})
        unavailable = HealthResponse(
            status="unavailable", model_version=None, history_length=None, index=None, cache=None, fallback=None
        )
        return Response(status_code=503, content_type=JSON, body=unavailable.model_dump_json())
    health = container.service.health()
    body = HealthResponse(
        status=health.status,  # type: ignore[arg-type]
        model_version=health.model_version,
        history_length=health.history_length,
        index={"kind": health.index.kind, "ok": health.index.ok, "detail": health.index.detail,  # type: ignore[arg-type]
               "info": health.index.info},
        cache={"kind": health.cache.kind, "ok": health.cache.ok, "detail": health.cache.detail,  # type: ignore[arg-type]
               "info": health.cache.info},
        fallback=health.fallback,  # type: ignore[arg-type]
    )
    status = 503 if health.status == "unavailable" else 200
    return Response(status_code=status, content_type=JSON, body=body.model_dump_json())


@lru_cache(maxsize=1)
def openapi_document() -> str:
    """The OpenAPI 3 document of the API, generated from the routes and models above."""
    return app.get_openapi_json_schema(title=API_TITLE, version=API_VERSION, description=API_DESCRIPTION)


@app.get("/openapi.json", include_in_schema=False)
def get_openapi() -> Response[str]:
    return Response(status_code=200, content_type=JSON, body=openapi_document())


# -- errors -----------------------------------------------------------------------------------

_ROUTES = (
    (re.compile(r"^/recommendations/?$"), ("POST",)),
    (re.compile(r"^/movies/[^/]+/?$"), ("GET",)),
    (re.compile(r"^/movies/[^/]+/similar/?$"), ("GET",)),
    (re.compile(r"^/health/?$"), ("GET",)),
    (re.compile(r"^/openapi\.json$"), ("GET",)),
)


@app.exception_handler(RequestValidationError)
def on_validation_error(exc: RequestValidationError) -> Response[Any]:
    raw = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in raw):
        reason = next(str(e.get("ctx", {}).get("error", "")) for e in raw if e.get("type") == "json_invalid")
        detail = [{"field": "(body)", "location": "body", "reason": reason}]
        return error_response(400, "invalid_json", "The body is not valid JSON.", detail)
    errors = []
    for e in raw:
        location, field = _field_path(tuple(e.get("loc", ())))
        errors.append({"field": field, "location": location, "reason": str(e.get("msg", "invalid"))})
    names = ", ".join(dict.fromkeys(e["field"] for e in errors))
    return error_response(422, "validation_error", f"Invalid request: {names}.", errors)


@app.exception_handler(MovieNotFoundError)
def on_movie_not_found(exc: MovieNotFoundError) -> Response[Any]:
    return error_response(
        404, "movie_not_found", str(exc), [{"field": "movie_id", "location": "path", "reason": "not in the catalog"}]
    )


@app.exception_handler(IndexUnavailableError)
def on_index_unavailable(exc: IndexUnavailableError) -> Response[Any]:
    logger.error("vector index unavailable", extra={"reason": str(exc)})
    return error_response(
        503, "index_unavailable", "The movie index is not answering; try again shortly.", headers={"Retry-After": "5"}
    )


@app.exception_handler(ModelMismatchError)
def on_model_mismatch(exc: ModelMismatchError) -> Response[Any]:
    logger.error("user tower and index of different models", extra={"reason": str(exc)})
    body = error_body(
        "model_mismatch",
        f"The movie index serves model {exc.index}, this service's user tower is model {exc.serving}; "
        "recommendations would mix them, so none are served. Try again shortly.",
    )
    body.update(bundle_model_version=exc.serving, index_model_version=exc.index)
    return Response(status_code=503, content_type=JSON, body=json.dumps(body), headers={"Retry-After": "10"})


@app.exception_handler(CompositionError)
def on_composition_error(exc: CompositionError) -> Response[Any]:
    logger.error("the service cannot be built", extra={"reason": str(exc)})
    return error_response(
        503, "model_unavailable", "The model could not be loaded; the operators have been told (see the logs).",
        headers={"Retry-After": "10"},
    )


@app.exception_handler(NotFoundError)
def on_not_found(exc: NotFoundError) -> Response[Any]:
    event = app.current_event
    path, method = event.path, event.http_method
    for pattern, methods in _ROUTES:
        if pattern.match(path):
            return error_response(
                405, "method_not_allowed", f"{method} is not allowed on {path}; use {', '.join(methods)}.",
                headers={"Allow": ", ".join(methods)},
            )
    return error_response(404, "not_found", f"No route {method} {path}.")


@app.exception_handler(Exception)
def on_unexpected(exc: Exception) -> Response[Any]:
    logger.exception("unhandled error")
    return error_response(500, "internal_error", "An unexpected error occurred; it has been logged.")


# -- the entry point ----------------------------------------------------------------------------

def _header(event: Mapping[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _body_size(event: Mapping[str, Any]) -> int:
    body = event.get("body")
    if not body:
        return 0
    if event.get("isBase64Encoded"):
        return (len(body) * 3) // 4
    return len(body.encode("utf-8")) if isinstance(body, str) else len(body)


def _precheck(event: Mapping[str, Any], max_body_bytes: int) -> dict[str, Any] | None:
    """Reject what must not reach the resolver: other events, oversized bodies, bodies that are not JSON."""
    if not isinstance(event.get("httpMethod"), str) or not isinstance(event.get("path"), str):
        return _standalone(
            event, 400, "unsupported_event", "This function answers API Gateway REST proxy events only."
        )
    size = _body_size(event)
    if size > max_body_bytes:
        return _standalone(
            event, 413, "body_too_large", f"The body has {size} bytes; the limit is {max_body_bytes}.",
            [{"field": "(body)", "location": "body", "reason": f"larger than {max_body_bytes} bytes"}],
        )
    content_type = (_header(event, "content-type") or "").split(";")[0].strip().lower()
    if size and content_type and not (content_type == JSON or content_type.endswith("+json")):
        return _standalone(
            event, 415, "unsupported_media_type", f"The body must be {JSON}, not {content_type}.",
            [{"field": "Content-Type", "location": "header", "reason": f"{content_type} is not supported"}],
        )
    if event.get("isBase64Encoded") and event.get("body"):
        try:
            base64.b64decode(event["body"], validate=True).decode("utf-8")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return _standalone(
                event, 400, "invalid_json", "The body is not UTF-8 encoded JSON.",
                [{"field": "(body)", "location": "body", "reason": "not valid base64 of UTF-8 text"}],
            )
    if _takes_a_json_body(event) and _is_json_array(event):
        # Powertools would validate the array's first element as the body (its form-field rule)
        return _standalone(
            event, 422, "validation_error", "Invalid request: (body).",
            [{"field": "(body)", "location": "body", "reason": "Input should be a JSON object, not an array"}],
        )
    return None


def _takes_a_json_body(event: Mapping[str, Any]) -> bool:
    method, path = event.get("httpMethod"), str(event.get("path"))
    return method == "POST" and any(pattern.match(path) and method in allowed for pattern, allowed in _ROUTES)


def _is_json_array(event: Mapping[str, Any]) -> bool:
    body = event.get("body")
    if not body or not isinstance(body, str):
        return False
    text = base64.b64decode(body).decode("utf-8") if event.get("isBase64Encoded") else body
    if not text.lstrip().startswith("["):
        return False
    try:
        return isinstance(json.loads(text), list)
    except ValueError:
        return False  # not JSON: the resolver answers 400 invalid_json


def _standalone(
    event: Mapping[str, Any], status: int, code: str, message: str, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    request_id = (event.get("requestContext") or {}).get("requestId")
    body = {"error": code, "message": message, "errors": errors or [], "request_id": request_id}
    headers = {"Content-Type": JSON}
    origin = _header(event, "origin") if isinstance(event.get("headers"), dict) else None
    if origin:  # answered before the resolver, which adds these to every other response
        headers.update(CORS.to_dict(CORS.allowed_origin(origin)))
    return {
        "statusCode": status,
        "headers": headers,
        "multiValueHeaders": {key: [value] for key, value in headers.items()},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def _max_body_bytes() -> int:
    container = composition.peek()
    return container.settings.max_body_bytes if container is not None else MAX_BODY_BYTES


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point (API Gateway REST proxy integration)."""
    start = time.perf_counter()
    event = event if isinstance(event, dict) else {}
    request_context = event.get("requestContext") or {}
    request_id = str(request_context.get("requestId") or uuid.uuid4())
    given = _header(event, CORRELATION_HEADER)
    correlation_id = given if given and _CORRELATION_RE.match(given) else request_id
    logger.thread_safe_append_keys(correlation_id=correlation_id)
    try:
        early = _precheck(event, _max_body_bytes())
        response = early if early is not None else app.resolve(event, context)
        _set_header(response, CORRELATION_HEADER, correlation_id)
        latency_ms = (time.perf_counter() - start) * 1000.0
        status = int(response.get("statusCode", 500))
        logger.info(
            "request",
            extra={
                "method": event.get("httpMethod"), "path": event.get("path"), "status": status,
                "latency_ms": round(latency_ms, 3),
            },
        )
        _emit_metrics(status, latency_ms)
        return response
    finally:
        logger.thread_safe_clear_keys()


def _set_header(response: dict[str, Any], name: str, value: str) -> None:
    multi = response.get("multiValueHeaders")
    if isinstance(multi, dict):
        multi[name] = [value]
    headers = response.get("headers")
    if isinstance(headers, dict):
        headers[name] = value
    elif multi is None:
        response["headers"] = {name: value}


def _emit_metrics(status: int, latency_ms: float) -> None:
    container = composition.peek()
    telemetry = container.telemetry if container is not None else None
    if telemetry is None:
        return
    telemetry.timing("RequestLatency", latency_ms)
    telemetry.count("Requests")
    if 400 <= status < 500:
        telemetry.count("ClientErrors")
    elif status >= 500:
        telemetry.count("ServerErrors")
    telemetry.flush()
