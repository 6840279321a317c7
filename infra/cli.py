"""``recs package lambda`` (build the Lambda asset without Docker, what ``cdk synth`` does), ``recs deploy`` and
``recs deploy preflight`` (docs/deploy.md)."""

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

    deploy = subparsers.add_parser(
        "deploy",
        help="deploy both stacks, upload the bundle, wait for it to serve, smoke-test (or: deploy preflight)",
        description=(
            "Preflight (read-only AWS checks), cdk deploy --all with the pinned CDK CLI, upload the bundle, wait until "
            "the indexer has built its index and /health serves that model, then the smoke test. --dry-run prints "
            "each step and calls nothing."
        ),
    )
    _common_deploy_options(deploy)
    deploy.add_argument("--dry-run", action="store_true", help="print each step and what it would run; call nothing")
    deploy.add_argument("--bundle", default="artifacts/bundle", help="local bundle to upload (default: %(default)s)")
    deploy.add_argument("--skip-upload", action="store_true", help="leave S3 alone (the bundle is there already)")
    deploy.add_argument("--timeout", type=float, default=1200.0,
                        help="seconds to wait for /health to serve the bundle's model (default: %(default)s)")
    deploy.set_defaults(func=_deploy)
    deploy_sub = deploy.add_subparsers(dest="deploy_step", metavar="STEP")
    preflight = deploy_sub.add_parser(
        "preflight",
        help="read-only checks that a deploy will not fail for a known reason",
        description="Read-only AWS calls; one line per check with what to do when it fails; exit 1 on any failure.",
    )
    _common_deploy_options(preflight)
    preflight.set_defaults(func=_preflight)


def _common_deploy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", default=None, help="AWS region (default: the AWS CLI/SDK configuration)")
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                        help="a CDK context value, as `cdk deploy -c` takes it (repeatable)")


def _deploy(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.errors import CommandError
    from infra.deploy import DeployError, DeployPlan, parse_context, run_deploy
    from infra.errors import InfraConfigError

    try:
        plan = DeployPlan(context=parse_context(args.context), bundle=Path(args.bundle), region=args.region,
                          skip_upload=args.skip_upload, timeout=args.timeout)
        run_deploy(plan, dry_run=args.dry_run)
    except (DeployError, InfraConfigError) as exc:
        raise CommandError(str(exc)) from exc
    return 0


def _preflight(args: argparse.Namespace, session: object | None = None) -> int:
    from core.errors import CommandError
    from infra.config import REPO_ROOT
    from infra.deploy import DeployError, load_settings, parse_context
    from infra.errors import InfraConfigError
    from infra.preflight import Preflight, report

    try:
        settings = load_settings(parse_context(args.context))
    except (DeployError, InfraConfigError) as exc:
        raise CommandError(str(exc)) from exc
    if session is None:
        import boto3

        session = boto3.session.Session(region_name=args.region)
    return 0 if report(Preflight(session, settings, assembly_dir=REPO_ROOT / "cdk.out").run_all()) else 1


def _package_lambda(args: argparse.Namespace) -> int:
    from core.errors import CommandError
    from infra.errors import PackagingError
    from infra.packaging import build_lambda_asset

    try:
        build_lambda_asset(args.out, arch=args.arch, verbose=True)
    except PackagingError as exc:
        raise CommandError(str(exc)) from exc
    return 0
