"""``recs serve``: the recommendation API on this machine (the Lambda handler behind a local HTTP server)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``recs serve``."""
    serve = subparsers.add_parser(
        "serve",
        help="serve the API locally (the Lambda handler behind an HTTP server)",
        description=(
            "Serve the recommendation API on the local machine: every HTTP request becomes an API Gateway "
            "REST event for the same handler that runs in Lambda. Uses the embedded index and an "
            "in-process cache unless OpenSearch / Redis are named (options or RECS_* variables)."
        ),
    )
    serve.add_argument(
        "--bundle",
        help="model bundle directory or s3:// prefix (default: $RECS_BUNDLE or artifacts/bundle); ending in '/', "
        "a root of bundles in folders named by model version: the one of the index's model is served",
    )
    serve.add_argument("--store", help="embedded index store (default: $RECS_EMBEDDED_STORE or artifacts/index)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)")
    serve.add_argument("--opensearch-url", help="use this OpenSearch instead of the embedded index")
    serve.add_argument("--redis-url", help="use this Redis instead of the in-process cache")
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from core.errors import CommandError, SettingsError
    from recommender.errors import CompositionError
    from recs.local.server import serve

    try:
        serve(
            args.bundle, host=args.host, port=args.port, embedded_store=args.store,
            opensearch_url=args.opensearch_url, redis_url=args.redis_url,
        )
    except (CompositionError, SettingsError) as exc:
        raise CommandError(f"cannot start the service: {exc}") from exc
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    return 0
