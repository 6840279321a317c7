"""Subcommands of ``recs`` contributed by this package: ``recs serve`` and ``recs package lambda``."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this package's subcommands to ``recs``."""
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

    package = subparsers.add_parser(
        "package", help="build deployment artifacts", description="Build deployment artifacts."
    )
    package_sub = package.add_subparsers(dest="artifact", metavar="ARTIFACT", required=True)
    lam = package_sub.add_parser(
        "lambda",
        help="build the Lambda asset directory (no Docker needed)",
        description=(
            "Install the serve dependencies as manylinux wheels for Python 3.12 into a directory, add the "
            "recommender package, strip what Lambda does not need and report the size."
        ),
    )
    lam.add_argument("--out", default="build/lambda", help="output directory (default: build/lambda); replaced")
    lam.add_argument("--arch", choices=("x86_64", "aarch64"), default="x86_64", help="Lambda architecture")
    lam.set_defaults(func=_package_lambda)


def _serve(args: argparse.Namespace) -> int:
    from recommender.composition import CompositionError
    from recommender.local_server import serve
    from recommender.settings import SettingsError
    from recs.cli import CommandError

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


def _package_lambda(args: argparse.Namespace) -> int:
    from recommender.packaging import PackagingError, build_lambda_asset
    from recs.cli import CommandError

    try:
        build_lambda_asset(args.out, arch=args.arch, verbose=True)
    except PackagingError as exc:
        raise CommandError(str(exc)) from exc
    return 0
