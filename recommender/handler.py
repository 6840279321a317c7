"""The Lambda handler: API Gateway REST proxy events in, JSON responses out.

Entry point: ``recommender.handler.lambda_handler``. It keeps the correlation id, the request log
line and the metrics; ``recommender.middleware`` refuses what must not reach the resolver, the
routers of ``recommender.routes`` map HTTP to the service (``recommender.service``, built on first
use by ``recommender.composition``) and ``recommender.responses`` maps errors to status codes and
the error shape. Nothing heavy happens at import: the resolver, the routes and the pydantic models
are cheap definitions, and the OpenAPI document is generated on the first GET /openapi.json.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from recommender import composition, snapstart
from recommender.middleware import header, json_object, reject_unfit_requests
from recommender.observability import logger
from recommender.responses import CORRELATION_HEADER, CORS, register_error_handlers
from recommender.routes import movies, operations, recommendations

_CORRELATION_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ThreadSafeRestResolver(APIGatewayRestResolver):
    """``APIGatewayRestResolver`` whose per-request state is thread-local.

    Powertools keeps the current event on the class and the route context on the instance, which
    is fine in Lambda (one request per process at a time) but not in the local server, which
    calls the same handler from several threads. The routers included read it through the
    resolver (``Router.current_event`` and ``context`` delegate to it), so they see it too.
    """

    def __init__(self, *, json_body_deserializer: Callable[[str], Any] | None = None, **kwargs: Any) -> None:
        self._state = threading.local()
        self._body_deserializer = json_body_deserializer
        super().__init__(json_body_deserializer=json_body_deserializer, **kwargs)

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
        # the event data class the resolver builds for itself, built here with the public class and
        # the same body deserializer, kept per thread (Powertools then sets its class-wide copy too,
        # which this resolver never reads)
        self._state.event = APIGatewayProxyEvent(dict(event), self._body_deserializer)
        self._state.lambda_context = context
        return super().resolve(event, context)


app = ThreadSafeRestResolver(enable_validation=True, cors=CORS, json_body_deserializer=json_object)
app.include_router(recommendations.router)
app.include_router(movies.router)
app.include_router(operations.router)
register_error_handlers(app)


def openapi_document() -> str:
    """The OpenAPI 3 document of this API (generated on the first call, then cached)."""
    return operations.openapi_document()


@reject_unfit_requests
def _resolve(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The resolver behind the pre-checks; ``lambda_handler`` wraps both, so the answers of the
    pre-checks carry the correlation id and are logged and counted too."""
    return app.resolve(event, context)


# With SnapStart (coldStart=snapstart) the service is built and warmed before the snapshot, and reconnected after
# each restore; elsewhere this does nothing (recommender.snapstart).
snapstart.install(_resolve)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point (API Gateway REST proxy integration)."""
    start = time.perf_counter()
    event = event if isinstance(event, dict) else {}
    request_context = event.get("requestContext") or {}
    request_id = str(request_context.get("requestId") or uuid.uuid4())
    given = header(event, CORRELATION_HEADER)
    correlation_id = given if given and _CORRELATION_RE.match(given) else request_id
    logger.thread_safe_append_keys(correlation_id=correlation_id)
    try:
        response: dict[str, Any] = _resolve(event, context)
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
