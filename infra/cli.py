"""``recs package lambda``: build the Lambda asset directory without Docker (what ``cdk synth`` does)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``recs package``."""
    package = subparsers.add_parser(
        "package", help="build deployment artifacts", description="Build deployment artifacts."
    )
    package_sub = package.add_subparsers(dest="artifact", metavar="ARTIFACT", required=True)
    lam = package_sub.add_parser(
        "lambda",
        help="build the Lambda asset directory (no Docker needed)",
        description=(
            "Install the serve dependencies as manylinux wheels for Python 3.12 into a directory, add the "
            "core and recommender packages, strip what Lambda does not need and report the size."
        ),
    )
    lam.add_argument("--out", default="build/lambda", help="output directory (default: build/lambda); replaced")
    lam.add_argument("--arch", choices=("x86_64", "aarch64"), default="x86_64", help="Lambda architecture")
    lam.set_defaults(func=_package_lambda)


def _package_lambda(args: argparse.Namespace) -> int:
    from core.errors import CommandError
    from infra.errors import PackagingError
    from infra.packaging import build_lambda_asset

    try:
        build_lambda_asset(args.out, arch=args.arch, verbose=True)
    except PackagingError as exc:
        raise CommandError(str(exc)) from exc
    return 0
