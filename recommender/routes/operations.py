"""Operations: GET /health (model and backends) and GET /openapi.json (the API's OpenAPI 3 document)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from recommender import composition
from recommender.api_models import HealthResponse
from recommender.errors import CompositionError
from recommender.observability import logger
from recommender.responses import JSON
from recommender.routes.common import doc, method_not_allowed

router = APIGatewayRouter()

HEALTH = "/health"
OPENAPI = "/openapi.json"
API_TITLE = "Movie recommendations"
API_VERSION = "1.0.0"
API_DESCRIPTION = (
    "Recommendations from a two-tower model: the person's recent activity goes through the user "
    "tower (numpy) and a k-NN search over the movie vectors, with filters inside the search."
)


@router.get(
    HEALTH,
    summary="Model version and whether each backend answers",
    description="200 when recommendations can be served (`ok`, or `degraded` with the cache or index down but a "
    "fallback in place); 503 when they cannot.",
    tags=["operations"],
    responses={
        200: doc("Serving", HealthResponse),
        503: doc("Not serving", HealthResponse),
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
    """The OpenAPI 3 document of the API, generated from the routes and models of the resolver that
    includes this router (on the first call, not at import)."""
    # Router has no public accessor for its resolver: ``include_router`` sets ``api_resolver`` (a
    # public attribute, what the router's own ``current_event`` reads through)
    resolver = router.api_resolver
    if not isinstance(resolver, ApiGatewayResolver):
        raise RuntimeError("the operations router is in no resolver yet (include_router it first)")
    return resolver.get_openapi_json_schema(title=API_TITLE, version=API_VERSION, description=API_DESCRIPTION)


@router.get(OPENAPI, include_in_schema=False)
def get_openapi() -> Response[str]:
    return Response(status_code=200, content_type=JSON, body=openapi_document())


method_not_allowed(router, HEALTH, allowed=("GET",))
method_not_allowed(router, OPENAPI, allowed=("GET",))
