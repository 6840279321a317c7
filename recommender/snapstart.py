"""Lambda SnapStart runtime hooks (``coldStart=snapstart`` in the CDK app).

With SnapStart, Lambda runs the init once when a version is published, snapshots the memory and disk of
the environment, and resumes new environments from that snapshot on scale-up (Lambda Developer Guide,
"Improving startup performance with Lambda SnapStart"). Two hooks, registered through
``snapshot_restore_py`` (the library the Python managed runtime provides; "Lambda SnapStart runtime hooks
for Python"):

- **before the snapshot** (``before_snapshot``): build the container (settings, the bundle and its user
  tower, the index and cache adapters; with a bundle root, the live model's tower), build the popularity
  fallback (the bundle's catalog, downloaded from S3 when the bundle is there), and warm the code path: one
  request per route through the resolver (validation, OpenAPI models, the user tower, the index), and the
  OpenAPI document. Their metrics are discarded, nothing is logged per request. A failure is logged and never
  fails the publish: a restored environment then builds the service on its first request, like an on-demand
  cold start (on a first deploy the index does not exist yet).
- **after the restore** (``after_restore``): whatever must be unique or fresh per environment is made again:
  the ``random`` module is reseeded from the OS, boto3's default session is dropped (credentials are resolved
  again, from the container credentials SnapStart gives), and ``composition.reconnect`` gives the service new
  OpenSearch and Redis clients (new connections, new SigV4 credentials, the Redis token read again), reads the
  index's model again on the next request and empties an in-process cache. Lambda allows the after-restore
  hooks 10 seconds; this one makes one Secrets Manager call (with Redis AUTH) and no other network call.

``install`` registers the hooks only when Lambda initializes the environment for a snapshot
(``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``, the value the runtime interface client tests); elsewhere
``snapshot_restore_py`` is never imported (it exists only in the Lambda runtime).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from recommender import composition
from recommender.errors import CompositionError

log = logging.getLogger(__name__)

INITIALIZATION_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"
SNAP_START = "snap-start"
WARM_UP_REQUEST_ID = "snapstart-warm-up"

Resolve = Callable[[dict[str, Any], Any], dict[str, Any]]
"""The handler's resolver behind its pre-checks (``recommender.handler._resolve``): no request log, no metrics."""


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether this environment is being initialized for a SnapStart snapshot."""
    return (os.environ if env is None else env).get(INITIALIZATION_TYPE) == SNAP_START


def install(resolve: Resolve, hooks: ModuleType | None = None) -> bool:
    """Register the hooks with ``snapshot_restore_py`` (or ``hooks``) when ``enabled()``; True if registered."""
    if not enabled():
        return False
    registry: Any = hooks if hooks is not None else importlib.import_module("snapshot_restore_py")
    # (snapshot_restore_py is provided by the Lambda Python runtime, 3.12 and later, and exists nowhere else)
    registry.register_before_snapshot(before_snapshot, resolve)
    registry.register_after_restore(after_restore)
    return True


def before_snapshot(resolve: Resolve) -> None:
    """Load and warm everything the snapshot should hold; never raises (see the module's docstring)."""
    started = time.perf_counter()
    try:
        container = composition.get_container()
    except CompositionError as exc:
        log.warning("SnapStart: the service could not be built before the snapshot (%s); a restored environment "
                    "builds it on its first request", exc)
        return
    service = container.service
    service.fallback.index_of(service.models.current())  # the bundle's catalog, for the popularity fallback
    statuses = warm_up(resolve)
    if container.telemetry is not None:
        container.telemetry.discard()  # the warm-up's metrics are not traffic
    log.info("SnapStart: ready for the snapshot", extra={
        "model_version": service.model_version, "warm_up": statuses,
        "seconds": round(time.perf_counter() - started, 3),
    })


def after_restore() -> None:
    """Make per environment what the snapshot shares between environments; never raises."""
    random.seed()  # from os.urandom: every restored environment starts from the same random state otherwise
    numpy_random = sys.modules.get("numpy.random")  # not in the asset (stripped), but seeded if it ever is
    if numpy_random is not None:
        numpy_random.seed()
    boto3: Any = sys.modules.get("boto3")
    if boto3 is not None:
        boto3.DEFAULT_SESSION = None  # the next client resolves credentials again
    composition.reconnect()


def warm_up(resolve: Resolve) -> dict[str, int]:
    """One request per route through ``resolve``; ``{"METHOD path": status}`` (a failure is logged, not raised)."""
    container = composition.peek()
    model = container.service.models.current() if container is not None else None
    known = [int(i) for i in model.tower.movie_ids[:3]] if model is not None else []
    requests: list[tuple[str, str, dict[str, str] | None, Any]] = [
        ("POST", "/recommendations", None, {"history": [{"movie_id": i, "rating": 4.0} for i in known], "k": 10}),
        ("GET", "/movies/search", {"q": "the"}, None),
        ("GET", "/health", None, None),
        ("GET", "/openapi.json", None, None),
    ]
    if known:
        requests += [("GET", f"/movies/{known[0]}", None, None), ("GET", f"/movies/{known[0]}/similar", None, None)]
    statuses: dict[str, int] = {}
    for method, path, query, body in requests:
        try:
            statuses[f"{method} {path}"] = int(resolve(_event(method, path, query, body), None).get("statusCode", 0))
        except Exception as exc:  # the warm-up is an optimisation: it never fails the publish
            log.warning("SnapStart warm-up %s %s failed: %s", method, path, exc)
            statuses[f"{method} {path}"] = 0
    return statuses


def _event(method: str, path: str, query: dict[str, str] | None, body: Any) -> dict[str, Any]:
    """An API Gateway REST proxy event, as the stage ``v1`` would send it."""
    headers = {"content-type": "application/json"} if body is not None else {}
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"requestId": WARM_UP_REQUEST_ID, "stage": "v1", "httpMethod": method, "path": path},
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }
